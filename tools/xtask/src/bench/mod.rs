//! `cargo xtask bench` (`make bench`): times the real ingest path
//! (LocalStack S3 -> the ingest code the Lambda runs -> PostgreSQL ->
//! processed_orders.csv back to S3) on generated data, against the floor of
//! a plain COPY into bare tables plus the same keys built afterwards, on the
//! same PostgreSQL in the same run: a small, the main and a large file, each
//! into a fresh database; then onto the main and the large base an
//! increment of new orders and a file of late barcodes (see `increments`);
//! then a burst of files at once into a fresh database.
//!
//! Everything it creates (databases bench_*, bucket bench-* and its queues)
//! is removed at the end; PostgreSQL and LocalStack are started if they are
//! not running and stopped again only if nobody else uses them by then.

pub(crate) mod burst;
mod floor;
mod increments;
mod report;

use std::path::Path;

use anyhow::{bail, Result};
use order_pipeline::config::INCOMING_PREFIX;
use serde_json::{json, Value};

use crate::datasets::{self, Ingested};
use crate::postgres;
use crate::scratch::Scratch;
use crate::services::Services;
use crate::workspace::{self, say, Workspace};
use floor::Keys;
use report::Row;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Orders in the main file.
    #[arg(long, env = "BENCH_ORDERS", default_value_t = 1_000_000,
          value_parser = workspace::count::<u64>())]
    orders: u64,
    /// Orders in the incremental file, loaded into the main file's database.
    #[arg(long, env = "BENCH_INCREMENT", default_value_t = 100_000,
          value_parser = workspace::count::<u64>())]
    increment: u64,
    /// Orders in the small run, to show that memory stays flat
    /// (BENCH_ORDERS/10 when this is not smaller).
    #[arg(long, env = "BENCH_SMALL", default_value_t = 100_000,
          value_parser = workspace::count::<u64>())]
    small: u64,
    /// Orders in the large run, the other end of the memory check (0, or not
    /// above BENCH_ORDERS, skips it).
    #[arg(long, env = "BENCH_LARGE", default_value_t = 3_000_000)]
    large: u64,
    /// Pairs of files in the burst, dropped into the bucket together and
    /// ingested into a fresh database (0 skips it).
    #[arg(long, env = "BENCH_BURST_FILES", default_value_t = 20)]
    burst_files: u64,
    /// Orders in each of the burst's files.
    #[arg(long, env = "BENCH_BURST_ORDERS", default_value_t = 50_000,
          value_parser = workspace::count::<u64>())]
    burst_orders: u64,
    /// Ingests at once during the burst: the template's IngestMaxConcurrency
    /// default.
    #[arg(long, env = "BENCH_BURST_WORKERS", default_value_t = 5,
          value_parser = workspace::count::<u64>())]
    burst_workers: u64,
    /// Builds and runs the debug binaries instead of release ones: a quick
    /// check that the task works, whose figures compare with nothing.
    #[arg(long)]
    debug: bool,
}

/// The file sizes to run, smallest first: the small run (a tenth of the
/// main one when BENCH_SMALL is not smaller, none when that is nothing),
/// the main run, and the large one when it is larger.
fn sizes(args: &Args) -> Vec<u64> {
    let small = if args.small < args.orders {
        args.small
    } else {
        args.orders / 10
    };
    let mut sizes = Vec::new();
    if small > 0 {
        sizes.push(small);
    }
    sizes.push(args.orders);
    if args.large > args.orders {
        sizes.push(args.large);
    }
    sizes
}

pub async fn run(workspace: &Workspace, args: Args) -> Result<()> {
    let services = Services::start(workspace).await?;
    let mut scratch = Scratch::new("bench", workspace.admin_url()).await?;
    let s3 = scratch.s3.clone();
    let result = workspace::interruptible(benchmark(workspace, &args, &mut scratch)).await;
    scratch.tear_down().await;
    services.stop_unused(workspace, &s3).await;
    result
}

async fn benchmark(workspace: &Workspace, args: &Args, scratch: &mut Scratch) -> Result<()> {
    if args.debug {
        say("--debug: debug binaries, the figures compare with nothing");
    }
    let bin = workspace.build(!args.debug, &["pipeline-local"]).await?;
    let out = workspace.out_dir("bench")?;
    let sizes = sizes(args);

    say(&format!("generating data into {}", out.display()));
    let mut generated = Vec::new();
    for &orders in &sizes {
        let dir = out.join(format!("orders-{orders}"));
        let summary = datasets::generate(
            &dir,
            datagen::Config {
                orders,
                seed: 1,
                first_order_id: 1,
            },
        )?;
        generated.push((orders, dir, summary));
    }
    let burst = burst::Burst {
        files: args.burst_files,
        orders: args.burst_orders,
        workers: args.burst_workers,
    };
    let burst_files = burst::generate(&out, burst, 1)?;

    say(&format!("creating bucket s3://{}", scratch.names.bucket));
    scratch.bootstrap().await?;

    let stamp = scratch.stamp.clone();
    let mut rows = Vec::new();
    for (orders, dir, summary) in &generated {
        let label = format!("orders {orders}");
        let database = format!("bench_{stamp}_n{orders}");
        let url = scratch.database(&database).await?;
        postgres::migrate(&url).await?;
        datasets::upload(scratch, dir).await?;
        let keys = datasets::FILES.map(|name| format!("{INCOMING_PREFIX}{name}"));
        let ingested = real_ingest(&bin, scratch, &label, &keys, &url, &out).await?;

        let floor_database = format!("bench_{stamp}_floor_n{orders}");
        let floor_url = floor::create(scratch, &floor_database).await?;
        say(&format!(
            "{label}: floor (COPY into bare tables, then keys) in {floor_database}"
        ));
        let floor = floor::run(&floor_url, dir, Keys::BuildAfter).await?;
        rows.push(row(
            label,
            datasets::data_rows(summary),
            &ingested,
            floor,
            false,
        ));
        if *orders == args.orders || *orders == args.large {
            // The steady state's files follow onto the main and large bases,
            // right away: a later base's load (and its autovacuum) would
            // share the machine with them.
            let base = increments::Base {
                orders: *orders,
                dir: dir.clone(),
                url,
                floor_url,
            };
            rows.push(increments::new_orders(&bin, scratch, &out, &base, args.increment).await?);
            rows.push(increments::late_barcodes(&bin, scratch, &out, &base, args.increment).await?);
        }
        scratch.drop_database(&database).await?;
        scratch.drop_database(&floor_database).await?;
    }

    let mut publishes = None;
    if !burst_files.is_empty() {
        let outcome = burst::run(&bin, scratch, &out, burst, &burst_files).await?;
        rows.push(outcome.row);
        publishes = Some(outcome.publishes);
    }

    let table_path = out.join(format!("results-{stamp}.txt"));
    let context = report::Context {
        cores: workspace::cores(),
        postgres_version: postgres::server_version(scratch.admin()).await?,
        utc_minute: workspace::utc_minute(),
        reports: format!("{}/*.ingest.{{json,stderr}}", out.display()),
        table_path: table_path.display().to_string(),
    };
    let mut table = report::render(&context, &rows);
    if let Some(publishes) = publishes {
        table.push_str(&format!(
            "The burst: {} pairs of files of {} orders, {} ingests at once, into a fresh database; \
             processed_orders.csv was published {publishes} times for them.\n",
            burst.files, burst.orders, burst.workers
        ));
    }
    print!("{table}");
    std::fs::write(&table_path, table)?;
    Ok(())
}

fn row(label: String, rows: u64, ingested: &Ingested, floor: floor::Floor, copy_only: bool) -> Row {
    Row {
        label,
        rows,
        ingest_secs: ingested.measured.seconds,
        publish_secs: publish_secs(&ingested.reports),
        floor,
        floor_copy_only: copy_only,
        peak_rss_mb: ingested.measured.peak_rss_mb,
    }
}

/// Times `pipeline-local ingest` of the uploaded `keys` into the database
/// of `url`; every file must be loaded.
async fn real_ingest(
    bin: &Path,
    scratch: &Scratch,
    label: &str,
    keys: &[String],
    url: &str,
    out: &Path,
) -> Result<Ingested> {
    say(&format!("{label}: real ingest path"));
    let reports = out.join(format!("{}.ingest", label.replace([' ', '+'], "_")));
    let ingested = datasets::ingest_keys(bin, scratch, url, keys, &reports).await?;
    for report in &ingested.reports {
        eprintln!("    {}", summary_of(report));
    }
    if ingested.reports.iter().any(|r| r["status"] != "loaded") {
        bail!(
            "{label}: a file was not loaded (see {})",
            ingested.reports_path.display()
        );
    }
    Ok(ingested)
}
/// Key, status, counts and timings of a report, whatever else it holds.
fn summary_of(report: &Value) -> Value {
    let field = |name: &str| report.get(name).cloned().unwrap_or(Value::Null);
    json!({
        "key": field("key"),
        "status": field("status"),
        "counts": field("counts"),
        "timings": field("timings"),
        "processed_orders_written": field("processed_orders_written"),
    })
}

/// Seconds spent regenerating processed_orders.csv (0 for a report without
/// `timings.publish_ms`).
fn publish_secs<'a>(reports: impl IntoIterator<Item = &'a Value>) -> f64 {
    let millis: f64 = reports
        .into_iter()
        .filter_map(|r| r["timings"]["publish_ms"].as_f64())
        .sum();
    millis / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::task;
    use crate::Task;

    fn args(cli: &[&str]) -> Args {
        match task(&[&["bench"], cli].concat()).unwrap() {
            Task::Bench(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_default_sizes_are_the_readme_s() {
        let args = args(&[
            "--orders", "1000000", "--small", "100000", "--large", "3000000",
        ]);
        assert_eq!(sizes(&args), [100_000, 1_000_000, 3_000_000]);
    }

    #[test]
    fn a_small_run_not_smaller_becomes_a_tenth_and_large_zero_skips() {
        let args = args(&["--orders", "1000", "--small", "100000", "--large", "0"]);
        assert_eq!(sizes(&args), [100, 1000]);
        // A tenth of under ten orders is none: one run, not the same twice.
        let args = args_tiny();
        assert_eq!(sizes(&args), [5]);
    }

    fn args_tiny() -> Args {
        args(&["--orders", "5", "--small", "5", "--large", "5"])
    }

    #[test]
    fn sizes_must_be_positive() {
        assert!(task(&["bench", "--orders", "0"]).is_err());
        assert!(task(&["bench", "--increment", "0"]).is_err());
    }

    #[test]
    fn publish_sums_the_reports_and_counts_a_missing_timing_as_zero() {
        let reports = [
            json!({"timings": {"publish_ms": 1500}}),
            json!({"timings": {}}),
            json!({"timings": {"publish_ms": 250}}),
        ];
        assert_eq!(publish_secs(&reports), 1.75);
    }

    #[test]
    fn the_summary_keeps_only_what_the_log_shows() {
        let report = json!({"key": "incoming/orders.csv", "status": "loaded", "counts": {"accepted": 3},
                            "timings": {"publish_ms": 1}, "processed_orders_written": true, "rejected": []});
        let summary = summary_of(&report);
        assert_eq!(summary.as_object().unwrap().len(), 5);
        assert!(summary.get("rejected").is_none());
    }
}
