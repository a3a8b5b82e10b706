//! `cargo xtask dashboard` (part of `make test`): the dashboard in real
//! headless Chromium (Debian's `chromium`, driven by playwright-core from
//! tools/dashboard-test/) against the real local stack: generated data
//! loaded through the real ingest path into a fresh database and bucket,
//! the API (tools/apiserve, routed as `cargo lambda watch` routes it)
//! serving /dashboard, and the queue fed to the ingest handler, so that a
//! file uploaded from the page is ingested as in AWS. The browser signs in through the link `make up`
//! prints and checks every view against the API's own answers.
//!
//! Screenshots of every view, at 1280 and 390 px wide, go to
//! .local/dashboard/screenshots/; the server's log beside them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::api_data::ApiData;
use crate::services::Services;
use crate::workspace::{self, say, Workspace};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Orders to load before the browser opens the page.
    #[arg(long, env = "DASHBOARD_TEST_ORDERS", default_value_t = 2_000,
          value_parser = workspace::count::<u64>())]
    orders: u64,
    /// Where the API listens (and, on the next port, the test's sign-in
    /// provider).
    #[arg(long, env = "DASHBOARD_TEST_PORT", default_value_t = 9400)]
    port: u16,
    /// The Chromium to drive.
    #[arg(long, env = "CHROMIUM", default_value = "/usr/bin/chromium")]
    chromium: PathBuf,
}

/// The dashboard's client id at the test's sign-in provider.
const OIDC_CLIENT_ID: &str = "order-pipeline-dashboard";

/// The test's directory, with its package.json and node_modules.
const TEST_DIR: &str = "tools/dashboard-test";

pub async fn run(workspace: &Workspace, args: Args) -> Result<()> {
    let tests = workspace.root.join(TEST_DIR);
    check_installed(&tests, &args.chromium)?;
    let base_url = format!("http://127.0.0.1:{}", args.port);
    if reqwest::get(format!("{base_url}/")).await.is_ok() {
        bail!("something already listens on {base_url}; set DASHBOARD_TEST_PORT");
    }
    Services::start(workspace).await?;
    let bin = workspace
        .build(false, &["pipeline-local", "apiserve"])
        .await?;
    let mut api = ApiData::new(workspace, "dashboard_test", "dashboard").await?;
    let testing = browse(&bin, &args, &tests, &base_url, &mut api);
    let result = workspace::interruptible(testing).await;
    api.tear_down().await;
    result
}

fn check_installed(tests: &Path, chromium: &Path) -> Result<()> {
    if !tests.join("node_modules/playwright-core").is_dir() {
        bail!(
            "{}/node_modules is missing: `make test` installs it (scripts/local.sh install-dashboard-test)",
            tests.display()
        );
    }
    if !chromium.is_file() {
        bail!(
            "{} is missing: `make test` installs Debian's chromium (scripts/local.sh install-dashboard-test), or set CHROMIUM",
            chromium.display()
        );
    }
    Ok(())
}

async fn browse(
    bin: &Path,
    args: &Args,
    tests: &Path,
    base_url: &str,
    api: &mut ApiData,
) -> Result<()> {
    api.load(bin, args.orders).await?;
    // The page uploads from its origin, and what it uploads is ingested.
    api.scratch.allow_uploads_from(base_url).await?;
    api.forward(bin)?;
    say(&format!("serving the API and the dashboard on {base_url}"));
    // The sign-in provider the test plays (tools/dashboard-test starts it),
    // as the deployment configures a real one.
    let provider = format!("http://127.0.0.1:{}", args.port + 1);
    api.serve(bin, "apiserve", args.port, |command| {
        command
            .args(["--addr", &format!("127.0.0.1:{}", args.port)])
            .env(
                "DASHBOARD_OIDC_AUTHORIZATION_ENDPOINT",
                format!("{provider}/authorize"),
            )
            .env("DASHBOARD_OIDC_TOKEN_ENDPOINT", format!("{provider}/token"))
            .env("DASHBOARD_OIDC_CLIENT_ID", OIDC_CLIENT_ID);
    })
    .await?;
    let screenshots = api.out.join("screenshots");
    std::fs::create_dir_all(&screenshots)
        .with_context(|| format!("creating {}", screenshots.display()))?;
    say(&format!(
        "the dashboard in headless {} (screenshots: {})",
        args.chromium.display(),
        screenshots.display()
    ));
    let mut command = tokio::process::Command::new("node");
    command
        .current_dir(tests)
        .args(["--test", "--test-reporter=spec", "dashboard.test.mjs"])
        .env("DASHBOARD_BASE_URL", base_url)
        .env("DASHBOARD_TOKEN", api.token(2))
        .env(
            "DASHBOARD_READ_ONLY_TOKEN",
            api.token_with(&["orders:read", "analytics:read"], 2),
        )
        .env("DASHBOARD_SCREENSHOTS", &screenshots)
        .env("DASHBOARD_OIDC_PORT", (args.port + 1).to_string())
        .env("DASHBOARD_OIDC_CLIENT_ID", OIDC_CLIENT_ID)
        .env("CHROMIUM", &args.chromium);
    workspace::run(&mut command, "the dashboard test (node --test)").await
}
