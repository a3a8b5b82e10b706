//! The burst: many pairs of files dropped into the bucket together (a
//! partner re-sending a week) and ingested by as many workers at once as
//! the ingest function may run (the template's IngestMaxConcurrency), into a
//! fresh database; against the floor of COPYing all of them, with the
//! number of times processed_orders.csv was published for them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};

use super::floor::{self, Keys};
use super::report::Row;
use crate::datasets;
use crate::postgres;
use crate::scratch::Scratch;
use crate::workspace::say;

/// The burst's shape.
#[derive(Debug, Clone, Copy)]
pub struct Burst {
    /// Pairs of files (orders and their barcodes).
    pub files: u64,
    /// Orders in each.
    pub orders: u64,
    /// Ingests at once.
    pub workers: u64,
}

/// The burst's row and how many publishes it cost.
pub struct Outcome {
    pub row: Row,
    pub publishes: i64,
}

/// Generates the burst's files into `out`: pair `i` holds orders from
/// `1 + i * orders` on (barcodes follow from order ids, so no two pairs
/// share one).
pub fn generate(out: &Path, burst: Burst) -> Result<Vec<(PathBuf, datagen::Summary)>> {
    (0..burst.files)
        .map(|i| {
            let dir = out
                .join(format!("burst-{}x{}", burst.files, burst.orders))
                .join(i.to_string());
            let summary = datasets::generate(
                &dir,
                datagen::Config {
                    orders: burst.orders,
                    seed: 100 + i,
                    first_order_id: 1 + i * burst.orders,
                },
            )?;
            Ok((dir, summary))
        })
        .collect()
}

pub async fn run(
    bin: &Path,
    scratch: &mut Scratch,
    out: &Path,
    burst: Burst,
    generated: &[(PathBuf, datagen::Summary)],
) -> Result<Outcome> {
    let label = format!("burst {}x{}", burst.files, burst.orders);
    let workers = burst.workers.max(1) as usize;
    let mut keys_of_worker = vec![Vec::new(); workers];
    for (i, (dir, _)) in generated.iter().enumerate() {
        let prefix = format!("incoming/burst/{i}/");
        datasets::upload_as(scratch, dir, &prefix).await?;
        // Worker w takes pairs w, w + workers, ...: each pair's orders, then
        // its barcodes, as a partner's files arrive.
        let keys = &mut keys_of_worker[i % workers];
        keys.extend(datasets::FILES.map(|name| format!("{prefix}{name}")));
    }
    // Fewer pairs than workers: the idle workers are not started.
    keys_of_worker.retain(|keys| !keys.is_empty());
    let database = format!("bench_{}_burst", scratch.stamp);
    let url = scratch.database(&database).await?;
    postgres::migrate(&url).await?;
    say(&format!(
        "{label}: {} workers ingesting at once into {database}",
        burst.workers
    ));
    let outputs: Vec<PathBuf> = (0..keys_of_worker.len())
        .map(|w| out.join(format!("burst-{w}.ingest")))
        .collect();
    let scratch_ref = &*scratch;
    let started = Instant::now();
    let ingests = keys_of_worker
        .iter()
        .zip(&outputs)
        .map(|(keys, output)| datasets::ingest_keys(bin, scratch_ref, &url, keys, output));
    let ingested = futures_util::future::try_join_all(ingests).await?;
    let seconds = started.elapsed().as_secs_f64();
    let reports: Vec<&serde_json::Value> = ingested.iter().flat_map(|i| i.reports.iter()).collect();
    if reports.iter().any(|r| r["status"] != "loaded") {
        bail!(
            "{label}: a file was not loaded (see {}/burst-*.ingest.json)",
            out.display()
        );
    }
    let publishes: i64 = postgres::connect(&url)
        .await?
        .query_one(
            "SELECT coalesce(sum(publishes), 0)::bigint FROM published_outputs",
            &[],
        )
        .await?
        .get(0);

    let floor_database = format!("bench_{}_floor_burst", scratch.stamp);
    let floor_url = floor::create(scratch, &floor_database).await?;
    say(&format!(
        "{label}: floor (COPY of every file, then keys) in {floor_database}"
    ));
    let dirs: Vec<&Path> = generated.iter().map(|(dir, _)| dir.as_path()).collect();
    let floor = floor::run_all(&floor_url, &dirs, Keys::BuildAfter).await?;
    scratch.drop_database(&database).await?;
    scratch.drop_database(&floor_database).await?;
    Ok(Outcome {
        row: Row {
            label,
            rows: generated.iter().map(|(_, s)| datasets::data_rows(s)).sum(),
            ingest_secs: seconds,
            publish_secs: super::publish_secs(reports),
            floor,
            floor_copy_only: false,
            peak_rss_mb: ingested
                .iter()
                .map(|i| i.measured.peak_rss_mb)
                .fold(0.0, f64::max),
        },
        publishes,
    })
}
