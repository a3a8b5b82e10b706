//! The HTTP API over generated data, shared by `bench-api`, `fuzz-api` and
//! `dashboard`:
//! a fresh database and bucket (named `<prefix>_<stamp>`), tools/datagen
//! data loaded into them through the real ingest path, a throwaway JWT
//! secret and token, the servers; all stopped and removed by
//! [`ApiData::tear_down`].

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use pipeline_api::http::auth::{issue_hs256, ALL_SCOPES};

use crate::child::Server;
use crate::datasets::{self, FILES};
use crate::postgres;
use crate::scratch::Scratch;
use crate::workspace::{say, Workspace};

pub struct ApiData {
    pub scratch: Scratch,
    /// `.local/<name>`: the data (kept for the next run), logs and results.
    pub out: PathBuf,
    /// `<prefix>_<stamp>`, created by [`ApiData::load`].
    database: String,
    pub database_url: String,
    /// What the servers verify tokens with.
    pub jwt_secret: String,
    servers: Vec<Server>,
}

impl ApiData {
    /// Names the run's database and bucket after `prefix` (`bench_api`);
    /// `name` (`bench-api`) names its directory under .local/.
    pub async fn new(workspace: &Workspace, prefix: &str, name: &str) -> Result<Self> {
        let admin_url =
            std::env::var("TEST_DATABASE_ADMIN_URL").unwrap_or_else(|_| workspace.admin_url());
        let scratch = Scratch::new(prefix, admin_url).await?;
        let database = format!("{prefix}_{}", scratch.stamp);
        Ok(Self {
            out: workspace.out_dir(name)?,
            database_url: postgres::with_database(&scratch.admin_url, &database),
            database,
            jwt_secret: random_hex(32)?,
            scratch,
            servers: Vec::new(),
        })
    }

    /// Generates `orders` orders (unless a previous run left them in .local/),
    /// migrates the database, makes the bucket and uploads the files, then
    /// ingests them with `<bin>/pipeline-local`; returns the ingest's
    /// reports and how long it took.
    pub async fn load(&mut self, bin: &Path, orders: u64) -> Result<datasets::Ingested> {
        let data = self.out.join(format!("orders-{orders}"));
        if !data.join(FILES[1]).metadata().is_ok_and(|m| m.len() > 0) {
            say(&format!(
                "generating {orders} orders into {}",
                data.display()
            ));
            datasets::generate(
                &data,
                datagen::Config {
                    orders,
                    seed: 1,
                    first_order_id: 1,
                },
            )?;
        }
        say(&format!(
            "loading through the real ingest path into {} (bucket {})",
            self.database, self.scratch.names.bucket
        ));
        self.scratch.database(&self.database).await?;
        postgres::migrate(&self.database_url).await?;
        self.scratch.bootstrap().await?;
        datasets::upload(&self.scratch, &data).await?;
        let out = self.out.join(format!("ingest-{}", self.scratch.stamp));
        datasets::ingest(bin, &self.scratch, &self.database_url, &out).await
    }

    /// A token with every scope, valid for `hours`, that the servers accept.
    pub fn token(&self, hours: u64) -> String {
        self.token_with(&ALL_SCOPES, hours)
    }

    /// A token granting only `scopes`, valid for `hours`.
    pub fn token_with(&self, scopes: &[&str], hours: u64) -> String {
        issue_hs256(
            self.jwt_secret.as_bytes(),
            "local-developer",
            scopes,
            Duration::from_secs(hours * 3600),
            None,
            None,
        )
    }

    /// Starts `<bin>/<program>` over this data on `port` (the command's other
    /// settings added by `configure`), logging to .local/<name>/, and waits
    /// for its /health.
    pub async fn serve(
        &mut self,
        bin: &Path,
        program: &str,
        port: u16,
        configure: impl FnOnce(&mut Command),
    ) -> Result<()> {
        let mut command = Command::new(bin.join(program));
        command
            .env("DATABASE_URL", &self.database_url)
            .env("JWT_SECRET", &self.jwt_secret)
            .env("BUCKET", &self.scratch.names.bucket)
            .env("RUST_LOG", rust_log());
        configure(&mut command);
        let log = self
            .out
            .join(format!("{program}-{}.log", self.scratch.stamp));
        let health = format!("http://127.0.0.1:{port}/health");
        self.servers
            .push(Server::start(command, program, &log, &health).await?);
        Ok(())
    }

    /// Feeds the bucket's ingest queue to the ingest handler, in a
    /// `pipeline-local forward --in-process` beside the servers: files
    /// uploaded from now on are ingested as in AWS (notification, queue,
    /// function).
    pub fn forward(&mut self, bin: &Path) -> Result<()> {
        let mut command = Command::new(bin.join("pipeline-local"));
        command
            .args([
                "--bucket",
                &self.scratch.names.bucket,
                "forward",
                "--in-process",
            ])
            .env("DATABASE_URL", &self.database_url)
            .env("RUST_LOG", rust_log());
        let log = self
            .out
            .join(format!("forwarder-{}.log", self.scratch.stamp));
        self.servers
            .push(Server::spawn(command, "the forwarder", &log)?);
        Ok(())
    }

    /// Stops the servers, drops the database, deletes the bucket.
    pub async fn tear_down(self) {
        drop(self.servers); // each server stops when dropped
        self.scratch.tear_down().await;
    }
}

/// The servers' log level: RUST_LOG, else warn (their request logs would
/// cost more than the requests).
pub fn rust_log() -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into())
}

/// Key, status and accepted rows of each report, on one line.
pub fn accepted_summary(reports: &[serde_json::Value]) -> String {
    reports
        .iter()
        .map(|r| {
            format!(
                r#"{{"key":{},"status":{},"accepted":{}}}"#,
                r["key"], r["status"], r["counts"]["accepted"]
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `bytes` random bytes as hex, from the kernel.
fn random_hex(bytes: usize) -> Result<String> {
    let mut buffer = vec![0; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut buffer))
        .context("reading /dev/urandom")?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_ingest_summary_is_one_object_per_report() {
        let reports = [
            json!({"key": "incoming/orders.csv", "status": "loaded", "counts": {"accepted": 10}}),
            json!({"key": "incoming/barcodes.csv", "status": "loaded", "counts": {"accepted": 33}}),
        ];
        assert_eq!(
            accepted_summary(&reports),
            r#"{"key":"incoming/orders.csv","status":"loaded","accepted":10} {"key":"incoming/barcodes.csv","status":"loaded","accepted":33}"#
        );
    }

    #[test]
    fn secrets_are_hex_of_the_length_asked() {
        let secret = random_hex(32).unwrap();
        assert_eq!(secret.len(), 64);
        assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(secret, random_hex(32).unwrap());
    }
}
