//! `cargo xtask fuzz-api` (`make fuzz-api`, and the bounded run at the end
//! of `make test`): the HTTP API against its own OpenAPI document, with
//! schemathesis and every check it has, including the stateful phase that
//! follows the document's links (POST /orders -> GET /orders/{order_id}, ...).
//! Runs as a new user would: one base URL serving /openapi.json and every
//! route (tools/apiserve routes the paths as `cargo lambda watch` does), over
//! a database loaded with generated data so that valid ids exist and 404s do
//! not hide the handlers.
//!
//! Fails when schemathesis reports any failure; each comes with a curl line
//! to reproduce it. Reports (JUnit, NDJSON) and the server log go to
//! .local/fuzz-api/. Its database fuzz_api_* and bucket fuzz-api-* are
//! removed at the end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::api_data::ApiData;
use crate::services::Services;
use crate::workspace::{self, say, Workspace};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Test cases per operation and phase.
    #[arg(long, env = "FUZZ_API_EXAMPLES", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..))]
    examples: u32,
    /// Orders to load.
    #[arg(long, env = "FUZZ_API_ORDERS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    orders: u64,
    /// schemathesis's seed (random when not given).
    #[arg(long, env = "FUZZ_API_SEED")]
    seed: Option<u64>,
    /// Where the API listens.
    #[arg(long, env = "FUZZ_API_PORT", default_value_t = 9300)]
    port: u16,
}

/// Where scripts/local.sh install-schemathesis puts it.
fn schemathesis(workspace: &Workspace) -> PathBuf {
    workspace
        .root
        .join(".local/schemathesis-venv/bin/schemathesis")
}

pub async fn run(workspace: &Workspace, args: Args) -> Result<()> {
    let base_url = format!("http://127.0.0.1:{}", args.port);
    // Nothing else may answer on the port: schemathesis would test it instead.
    if reqwest::get(format!("{base_url}/")).await.is_ok() {
        bail!("something already listens on {base_url}; set FUZZ_API_PORT");
    }
    let schemathesis = schemathesis(workspace);
    let version = schemathesis_version(&schemathesis)?;
    Services::start(workspace).await?;
    let bin = workspace.build(false)?;
    let mut api = ApiData::new(workspace, "fuzz_api", "fuzz-api").await?;
    let result = workspace::interruptible(fuzz(
        workspace,
        &bin,
        &args,
        &base_url,
        &schemathesis,
        &version,
        &mut api,
    ))
    .await;
    api.tear_down().await;
    result
}

fn schemathesis_version(schemathesis: &Path) -> Result<String> {
    let output = Command::new(schemathesis)
        .arg("--version")
        .output()
        .with_context(|| {
            format!(
                "{} is missing: `make fuzz-api` installs it (scripts/local.sh install-schemathesis)",
                schemathesis.display()
            )
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.split_whitespace().last().unwrap_or("?").to_owned())
}

async fn fuzz(
    workspace: &Workspace,
    bin: &Path,
    args: &Args,
    base_url: &str,
    schemathesis: &Path,
    version: &str,
    api: &mut ApiData,
) -> Result<()> {
    api.load(bin, args.orders).await?;
    let token = api.token(2);
    say(&format!("serving the API on {base_url}"));
    api.serve(bin, "apiserve", args.port, |command| {
        command.args(["--addr", &format!("127.0.0.1:{}", args.port)]);
    })
    .await?;

    let seed = args
        .seed
        .map(|seed| format!(", seed {seed}"))
        .unwrap_or_default();
    say(&format!(
        "schemathesis {version}: every check, {} examples per operation{seed}",
        args.examples
    ));
    let started = Instant::now();
    let reports = api.out.join(format!("report-{}", api.scratch.stamp));
    let mut command = Command::new(schemathesis);
    command
        // schemathesis keeps a crash cache (.schemathesis/) where it runs.
        .current_dir(&api.out)
        .arg("--config-file")
        .arg(workspace.root.join("tools/xtask/schemathesis.toml"))
        .args(["run", &format!("{base_url}/openapi.json")])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "all",
            "--max-examples",
            &args.examples.to_string(),
        ])
        // One worker: with two, CPython 3.11.7's ast.parse (called by
        // hypothesis from both threads) fails with "AST constructor
        // recursion depth mismatch".
        .args(["--workers", "1", "--no-color", "--output-sanitize", "true"])
        .arg("--generation-database")
        .arg(api.out.join("examples"))
        .args(["--report", "junit,ndjson", "--report-dir"])
        .arg(&reports);
    if let Some(seed) = args.seed {
        command.args(["--seed", &seed.to_string()]);
    }
    workspace::run(&mut command, "schemathesis")
        .with_context(|| format!("reports: {}", reports.display()))?;
    say(&format!(
        "schemathesis passed in {} s (reports: {})",
        started.elapsed().as_secs(),
        reports.display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn the_seed_is_optional_and_examples_positive() {
        let cli = Cli::try_parse_from(["fuzz-api", "--examples", "25", "--seed", "1"]).unwrap();
        assert_eq!((cli.args.examples, cli.args.seed), (25, Some(1)));
        assert!(Cli::try_parse_from(["fuzz-api", "--examples", "0"]).is_err());
    }
}
