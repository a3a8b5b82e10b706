//! Where the tasks run: the checkout, its git-ignored .local/, the private
//! PostgreSQL's port, and the programs they call (cargo, scripts/local.sh).

use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio::process::Command;

use anyhow::{bail, Context, Result};

/// LocalStack's endpoint, the only AWS these tasks talk to.
pub const LOCALSTACK: &str = "http://127.0.0.1:4566";

/// The run was stopped with Ctrl-C; its teardown has run.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// LocalStack's dummy credentials and region, for this process's SDK
/// clients and every program it starts, whatever the shell holds: these
/// tasks must never reach a real AWS account.
pub fn use_localstack_credentials() {
    for (name, value) in [
        ("AWS_ENDPOINT_URL", LOCALSTACK),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ] {
        // Before the runtime starts: no other thread reads the environment yet.
        std::env::set_var(name, value);
    }
}

/// The checkout and the settings every task shares.
pub struct Workspace {
    pub root: PathBuf,
    /// The private PostgreSQL's port (PG_PORT, as scripts/local.sh).
    pub pg_port: u16,
}

impl Workspace {
    pub fn locate() -> Result<Self> {
        // tools/xtask -> the workspace root, wherever cargo was run from.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .context("tools/xtask has no workspace root")?
            .to_path_buf();
        let pg_port = match std::env::var("PG_PORT") {
            Ok(port) => port
                .parse()
                .with_context(|| format!("PG_PORT={port} is not a port"))?,
            Err(_) => 54329,
        };
        Ok(Self { root, pg_port })
    }

    /// .local/<name>: a task's data, logs and results (git-ignored).
    pub fn out_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.root.join(".local").join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// The private cluster's admin URL: never someone's DATABASE_URL.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.pg_port)
    }

    /// `cargo build --quiet` of the `binaries` a task runs (release or
    /// debug; only those, since a release build links each one with fat
    /// LTO); returns the directory they are in.
    pub async fn build(&self, release: bool, binaries: &[&str]) -> Result<PathBuf> {
        say(&format!(
            "building {}{}",
            binaries.join(", "),
            if release { " (release)" } else { "" }
        ));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command.current_dir(&self.root).args(["build", "--quiet"]);
        for binary in binaries {
            command.args(["--bin", binary]);
        }
        if release {
            command.arg("--release");
        }
        run(&mut command, "cargo build").await?;
        Ok(self
            .root
            .join("target")
            .join(if release { "release" } else { "debug" }))
    }

    /// scripts/local.sh with `args`, without DATABASE_URL: its services are
    /// the private cluster's, never a database someone pointed us at.
    pub async fn local_sh(&self, args: &[&str]) -> Result<()> {
        let script = self.root.join("scripts/local.sh");
        run(
            Command::new(&script).args(args).env_remove("DATABASE_URL"),
            &format!("scripts/local.sh {}", args.join(" ")),
        )
        .await
    }
}

/// Runs `command` to completion; an error names it and says how it ended.
/// Awaiting it lets Ctrl-C through ([`interruptible`]), which then stops it.
pub async fn run(command: &mut Command, what: &str) -> Result<()> {
    let status = command
        .kill_on_drop(true)
        .status()
        .await
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// A step of the run, in bold on stderr (stdout is for results).
pub fn say(message: &str) {
    eprintln!("\x1b[1m==> {message}\x1b[0m");
}

/// Now in UTC: year, month, day, hour, minute, second.
fn utc_now() -> [u32; 6] {
    let now = time::OffsetDateTime::from(SystemTime::now());
    let (hour, minute, second) = now.to_hms();
    [
        now.year() as u32,
        u8::from(now.month()).into(),
        now.day().into(),
        hour.into(),
        minute.into(),
        second.into(),
    ]
}

/// `<UTC yyyymmddhhmmss>_<pid>`: names this run's databases, bucket and files.
pub fn stamp() -> String {
    let [year, month, day, hour, minute, second] = utc_now();
    let pid = std::process::id();
    format!("{year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}_{pid}")
}

/// `yyyy-mm-ddThh:mmZ`, the time a result table was made.
pub fn utc_minute() -> String {
    let [year, month, day, hour, minute, _] = utc_now();
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}Z")
}

/// A count of at least one, for the tasks' size knobs.
pub fn count<T>() -> clap::builder::RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
{
    clap::builder::RangedU64ValueParser::new().range(1..)
}

/// Cores this machine offers, for the result tables.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Fails with where to get `program` when it is not on the PATH.
pub fn require_on_path(program: &str, installed_by: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    if !found {
        bail!("{program} is not installed: {installed_by} installs it");
    }
    Ok(())
}

/// Runs `work` until it ends or Ctrl-C arrives; the caller tears down after.
pub async fn interruptible<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => {
            say("interrupted: cleaning up");
            Err(Interrupted.into())
        }
    }
}
