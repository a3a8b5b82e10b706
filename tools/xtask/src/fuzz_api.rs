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
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::api_data::ApiData;
use crate::services::Services;
use crate::workspace::{self, say, Workspace};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Test cases per operation and phase.
    #[arg(long, env = "FUZZ_API_EXAMPLES", default_value_t = 500,
          value_parser = workspace::count::<u32>())]
    examples: u32,
    /// Orders to load.
    #[arg(long, env = "FUZZ_API_ORDERS", default_value_t = 20_000,
          value_parser = workspace::count::<u64>())]
    orders: u64,
    /// schemathesis's seed (random when not given or empty: `FUZZ_API_SEED=`).
    #[arg(long, env = "FUZZ_API_SEED", default_value = "")]
    seed: String,
    /// Where the API listens.
    #[arg(long, env = "FUZZ_API_PORT", default_value_t = 9300)]
    port: u16,
}

impl Args {
    fn seed(&self) -> Result<Option<u64>> {
        if self.seed.is_empty() {
            return Ok(None);
        }
        let seed = self
            .seed
            .parse()
            .with_context(|| format!("FUZZ_API_SEED={} is not a number", self.seed))?;
        Ok(Some(seed))
    }
}

/// The schemathesis that scripts/local.sh install-schemathesis installs.
struct Schemathesis {
    path: PathBuf,
    version: String,
}

impl Schemathesis {
    fn find(workspace: &Workspace) -> Result<Self> {
        let path = workspace
            .root
            .join(".local/schemathesis-venv/bin/schemathesis");
        let output = std::process::Command::new(&path).arg("--version").output().with_context(|| {
            format!(
                "{} is missing: `make fuzz-api` installs it (scripts/local.sh install-schemathesis)",
                path.display()
            )
        })?;
        let text = String::from_utf8_lossy(&output.stdout);
        let version = text.split_whitespace().last().unwrap_or("?").to_owned();
        Ok(Self { path, version })
    }
}

pub async fn run(workspace: &Workspace, args: Args) -> Result<()> {
    let seed = args.seed()?;
    let base_url = base_url(&args);
    // Nothing else may answer on the port: schemathesis would test it instead.
    if reqwest::get(format!("{base_url}/")).await.is_ok() {
        bail!("something already listens on {base_url}; set FUZZ_API_PORT");
    }
    let schemathesis = Schemathesis::find(workspace)?;
    Services::start(workspace).await?;
    let bin = workspace
        .build(false, &["pipeline-local", "apiserve"])
        .await?;
    let mut api = ApiData::new(workspace, "fuzz_api", "fuzz-api").await?;
    let fuzzing = fuzz(workspace, &bin, &args, seed, &schemathesis, &mut api);
    let result = workspace::interruptible(fuzzing).await;
    api.tear_down().await;
    result
}

fn base_url(args: &Args) -> String {
    format!("http://127.0.0.1:{}", args.port)
}

async fn fuzz(
    workspace: &Workspace,
    bin: &Path,
    args: &Args,
    seed: Option<u64>,
    schemathesis: &Schemathesis,
    api: &mut ApiData,
) -> Result<()> {
    let base_url = base_url(args);
    api.load(bin, args.orders).await?;
    let token = api.token(2);
    say(&format!("serving the API on {base_url}"));
    api.serve(bin, "apiserve", args.port, |command| {
        command.args(["--addr", &format!("127.0.0.1:{}", args.port)]);
    })
    .await?;

    say(&format!(
        "schemathesis {}: every check, {} examples per operation{}",
        schemathesis.version,
        args.examples,
        seed.map(|seed| format!(", seed {seed}"))
            .unwrap_or_default()
    ));
    let started = Instant::now();
    let reports = api.out.join(format!("report-{}", api.scratch.stamp));
    let mut command = tokio::process::Command::new(&schemathesis.path);
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
    if let Some(seed) = seed {
        command.args(["--seed", &seed.to_string()]);
    }
    workspace::run(&mut command, "schemathesis")
        .await
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
    use crate::tests::task;
    use crate::Task;

    fn args(cli: &[&str]) -> Args {
        match task(&[&["fuzz-api"], cli].concat()).unwrap() {
            Task::FuzzApi(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_seed_is_optional_and_examples_positive() {
        let parsed = args(&["--examples", "25", "--seed", "1"]);
        assert_eq!((parsed.examples, parsed.seed().unwrap()), (25, Some(1)));
        // `make fuzz-api FUZZ_API_SEED=` (the README's form) means no seed.
        assert_eq!(args(&["--seed", ""]).seed().unwrap(), None);
        assert!(args(&["--seed", "x"]).seed().is_err());
        assert!(task(&["fuzz-api", "--examples", "0"]).is_err());
    }
}
