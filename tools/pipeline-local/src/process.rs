//! `pipeline-local process`: the pipeline on local files, no AWS needed.

use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use order_pipeline::config::{DatabaseSettings, INCOMING_PREFIX, PROCESSED_ORDERS_KEY};
use order_pipeline::csv_records::CsvLimits;
use order_pipeline::ingest::{IngestStatus, Ingestor};
use order_pipeline::postgres::{self, PgStore};
use order_pipeline::storage::ObjectRef;
use pipeline_local::local_files::LocalFiles;

/// The pseudo-bucket local files are recorded under in the ledger.
const LOCAL_BUCKET: &str = "local";

pub async fn run(files: Vec<PathBuf>, out_dir: PathBuf, top: i64) -> Result<()> {
    let settings = DatabaseSettings::from_env()?;
    let pool = postgres::pool::connect_pool(&settings)?;
    postgres::migrations::migrate(&pool)
        .await
        .context("applying migrations")?;
    let mut store = LocalFiles::new(&out_dir);
    let mut keys = Vec::new();
    for file in &files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} has no file name", file.display()))?;
        anyhow::ensure!(file.is_file(), "{} is not a readable file", file.display());
        let key = format!("{INCOMING_PREFIX}{name}");
        store.add_input(&key, file);
        keys.push((key, file.clone()));
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:20} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    store.set_progress(Some(bar.clone()));
    let ingestor = Ingestor::new(store, PgStore::new(pool)).with_csv_limits(CsvLimits::from_env()?);

    let mut duplicates = 0;
    for (key, file) in &keys {
        bar.set_message(
            file.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        let object = ObjectRef::new(LOCAL_BUCKET, key.clone());
        let report = tokio::select! {
            report = ingestor.ingest(&object) => report?,
            _ = tokio::signal::ctrl_c() => {
                bar.abandon();
                // Dropping the ingest rolled its transaction back.
                anyhow::bail!("interrupted: nothing from {} was saved (files before it were)", file.display());
            }
        };
        bar.finish_and_clear();
        duplicates += report.counts.duplicates;
        match report.status {
            IngestStatus::Loaded => eprintln!(
                "{}: {} rows, {} accepted, {} rejected, {} duplicates, {} warnings{}",
                file.display(),
                report.counts.rows_read,
                report.counts.accepted,
                report.counts.rejected,
                report.counts.duplicates,
                report.counts.warnings,
                report
                    .rejects_key
                    .as_deref()
                    .map(|k| format!(" (rejects: {})", ingestor.store().output_path(k).display()))
                    .unwrap_or_default()
            ),
            IngestStatus::Rejected => eprintln!(
                "{}: rejected whole: {}",
                file.display(),
                report.error.as_deref().unwrap_or_default()
            ),
            IngestStatus::AlreadyIngested => eprintln!(
                "{}: already loaded (same size and modification time); nothing changed",
                file.display()
            ),
            // Local files are read as they are, never by an older ETag.
            IngestStatus::Superseded => eprintln!(
                "{}: changed while it was being read; run again",
                file.display()
            ),
        }
    }
    // Make sure the output exists even when every file had been loaded before.
    ingestor.publish_processed_orders(LOCAL_BUCKET).await?;

    let store = ingestor.db();
    let totals = store.totals().await?;
    println!(
        "processed orders:          {}",
        ingestor.store().output_path(PROCESSED_ORDERS_KEY).display()
    );
    println!("duplicates in these files: {duplicates}");
    println!(
        "orders without barcodes:   {}",
        store.orders_without_barcodes().await?
    );
    println!("unused barcodes:           {}", totals.unused_barcodes);
    println!("top {top} customers:");
    println!("customer_id, amount_of_tickets");
    for customer in store.top_customers(top).await?.customers {
        println!("{}, {}", customer.customer_id, customer.tickets);
    }
    Ok(())
}
