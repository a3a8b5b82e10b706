//! Generated orders.csv and barcodes.csv (tools/datagen, in this process),
//! uploaded and ingested through the real path: the release or debug
//! `pipeline-local ingest`, the code the ingest function runs, as a process
//! of its own so that its time and memory are its own.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use order_pipeline::config::INCOMING_PREFIX;
use serde_json::Value;

use crate::child::{self, Measured};
use crate::scratch::Scratch;

/// The two files, in the order they are loaded.
pub const FILES: [&str; 2] = ["orders.csv", "barcodes.csv"];

/// Writes DIR/orders.csv and DIR/barcodes.csv for `config`.
pub fn generate(dir: &Path, config: datagen::Config) -> Result<datagen::Summary> {
    config.validate().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let writer = |name: &str| -> Result<BufWriter<File>> {
        let path = dir.join(name);
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(BufWriter::with_capacity(1 << 20, file))
    };
    let summary = datagen::generate(&config, writer(FILES[0])?, writer(FILES[1])?)
        .with_context(|| format!("writing {}", dir.display()))?;
    eprintln!("    {}: {summary}", dir.display());
    Ok(summary)
}

/// Data rows of both files.
pub fn data_rows(summary: &datagen::Summary) -> u64 {
    summary.orders + summary.barcode_rows
}

/// Uploads DIR's two files into the bucket's incoming/ prefix.
pub async fn upload(scratch: &Scratch, dir: &Path) -> Result<()> {
    upload_as(scratch, dir, INCOMING_PREFIX).await
}

/// Uploads DIR's two files as `<prefix>orders.csv` and `<prefix>barcodes.csv`.
pub async fn upload_as(scratch: &Scratch, dir: &Path, prefix: &str) -> Result<()> {
    for name in FILES {
        let key = format!("{prefix}{name}");
        pipeline_local::upload::upload_file(
            &scratch.s3,
            &scratch.names.bucket,
            &key,
            &dir.join(name),
        )
        .await?;
    }
    Ok(())
}

/// One `pipeline-local ingest` of the uploaded files into `database_url`.
pub struct Ingested {
    pub measured: Measured,
    /// One JSON report per file.
    pub reports: Vec<Value>,
    /// Where the reports are (one JSON object a line).
    pub reports_path: PathBuf,
}

/// Runs `<bin>/pipeline-local ingest` on incoming/{orders,barcodes}.csv;
/// its reports go to `<out>.json` and its stderr to `<out>.stderr`.
pub async fn ingest(
    bin: &Path,
    scratch: &Scratch,
    database_url: &str,
    out: &Path,
) -> Result<Ingested> {
    let keys = FILES.map(|name| format!("{INCOMING_PREFIX}{name}"));
    ingest_keys(bin, scratch, database_url, &keys, out).await
}

/// Runs `<bin>/pipeline-local ingest` on `keys`, one after the other, as
/// [`ingest`] does.
pub async fn ingest_keys(
    bin: &Path,
    scratch: &Scratch,
    database_url: &str,
    keys: &[String],
    out: &Path,
) -> Result<Ingested> {
    let mut command = Command::new(bin.join("pipeline-local"));
    command
        .args(["--bucket", &scratch.names.bucket, "ingest"])
        .args(keys)
        .env("DATABASE_URL", database_url);
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "warn");
    }
    let with_suffix = |suffix: &str| PathBuf::from(format!("{}.{suffix}", out.display()));
    let (reports_path, stderr_path) = (with_suffix("json"), with_suffix("stderr"));
    let measured = child::measure(
        command,
        &reports_path,
        &stderr_path,
        "pipeline-local ingest",
    )
    .await?;
    if !measured.status.success() {
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        bail!(
            "pipeline-local ingest failed ({}):\n{}",
            measured.status,
            stderr.trim_end()
        );
    }
    let text = std::fs::read_to_string(&reports_path)
        .with_context(|| format!("reading {}", reports_path.display()))?;
    let reports = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<Value>, _>>()
        .with_context(|| format!("reading the reports in {}", reports_path.display()))?;
    Ok(Ingested {
        measured,
        reports,
        reports_path,
    })
}
