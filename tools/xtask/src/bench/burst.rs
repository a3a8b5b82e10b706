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
/// `first_order_id + i * orders` on (barcodes follow from order ids, so no
/// two pairs share one).
pub fn generate(
    out: &Path,
    burst: Burst,
    first_order_id: u64,
) -> Result<Vec<(PathBuf, datagen::Summary)>> {
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
                    first_order_id: first_order_id + i * burst.orders,
                },
            )?;
            Ok((dir, summary))
        })
        .collect()
}

/// Uploads the pairs (pair `i` under `incoming/burst/<i>/`) and deals them
/// out to `workers`: worker w takes pairs w, w + workers, ..., each pair's
/// orders, then its barcodes, as a partner's files arrive. Returns each
/// worker's keys (none for a worker without a pair).
pub async fn upload(
    scratch: &Scratch,
    generated: &[(PathBuf, datagen::Summary)],
    workers: u64,
) -> Result<Vec<Vec<String>>> {
    let workers = workers.max(1) as usize;
    let mut keys_of_worker = vec![Vec::new(); workers];
    for (i, (dir, _)) in generated.iter().enumerate() {
        let prefix = format!("incoming/burst/{i}/");
        datasets::upload_as(scratch, dir, &prefix).await?;
        let keys = &mut keys_of_worker[i % workers];
        keys.extend(datasets::FILES.map(|name| format!("{prefix}{name}")));
    }
    keys_of_worker.retain(|keys| !keys.is_empty());
    Ok(keys_of_worker)
}

/// Runs the workers at once into the database of `url`, each a
/// `pipeline-local ingest` of its keys (reports in `<out>-<w>.ingest.*`);
/// every file must be loaded.
pub async fn ingest(
    bin: &Path,
    scratch: &Scratch,
    url: &str,
    keys_of_worker: &[Vec<String>],
    out: &Path,
) -> Result<Vec<datasets::Ingested>> {
    let outputs: Vec<PathBuf> = (0..keys_of_worker.len())
        .map(|w| PathBuf::from(format!("{}-{w}.ingest", out.display())))
        .collect();
    let ingests = keys_of_worker
        .iter()
        .zip(&outputs)
        .map(|(keys, output)| datasets::ingest_keys(bin, scratch, url, keys, output));
    let ingested = futures_util::future::try_join_all(ingests).await?;
    if ingested
        .iter()
        .flat_map(|i| i.reports.iter())
        .any(|r| r["status"] != "loaded")
    {
        bail!(
            "the burst: a file was not loaded (see {}-*.ingest.json)",
            out.display()
        );
    }
    Ok(ingested)
}

pub async fn run(
    bin: &Path,
    scratch: &mut Scratch,
    out: &Path,
    burst: Burst,
    generated: &[(PathBuf, datagen::Summary)],
) -> Result<Outcome> {
    let label = format!("burst {}x{}", burst.files, burst.orders);
    let keys_of_worker = upload(scratch, generated, burst.workers).await?;
    let database = format!("bench_{}_burst", scratch.stamp);
    let url = scratch.database(&database).await?;
    postgres::migrate(&url).await?;
    say(&format!(
        "{label}: {} workers ingesting at once into {database}",
        burst.workers
    ));
    let started = Instant::now();
    let ingested = ingest(bin, scratch, &url, &keys_of_worker, &out.join("burst")).await?;
    let seconds = started.elapsed().as_secs_f64();
    let reports: Vec<&serde_json::Value> = ingested.iter().flat_map(|i| i.reports.iter()).collect();
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
