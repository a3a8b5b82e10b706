//! `cargo xtask bench-api` (`make bench-api`): the HTTP API's speed at
//! scale. Loads BENCH_API_ORDERS generated orders (about 3.3 barcodes each)
//! through the real ingest path, serves the orders and analytics routers as
//! plain local HTTP servers (release builds, LOCAL_HTTP_ADDR) and drives
//! each endpoint with wrk. Its database bench_api_* and bucket bench-api-*
//! are removed at the end; the generated data stays in .local/bench-api/ for
//! the next run. PostgreSQL and LocalStack are started if needed and left
//! running (`make down`).

mod during_load;
mod wrk;

use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::api_data::{self, ApiData};
use crate::postgres;
use crate::services::Services;
use crate::workspace::{self, say, Workspace};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Orders to load.
    #[arg(long, env = "BENCH_API_ORDERS", default_value_t = 1_000_000,
          value_parser = workspace::count::<u64>())]
    orders: u64,
    /// Seconds of load per endpoint.
    #[arg(long, env = "BENCH_API_DURATION", default_value_t = 10,
          value_parser = workspace::count::<u32>())]
    duration: u32,
    /// Concurrent connections.
    #[arg(long, env = "BENCH_API_CONNS", default_value_t = 8)]
    conns: u32,
    /// Database connections per server.
    #[arg(long, env = "BENCH_API_POOL", default_value_t = 8)]
    pool: u32,
    #[arg(long, env = "BENCH_API_ORDERS_PORT", default_value_t = 9181)]
    orders_port: u16,
    #[arg(long, env = "BENCH_API_ANALYTICS_PORT", default_value_t = 9182)]
    analytics_port: u16,
    /// Requests a second each server is sent during a load, over its
    /// connections (0: as fast as it answers, which measures the queue).
    #[arg(long, env = "BENCH_API_DURING_RATE", default_value_t = 100)]
    during_rate: u32,
    /// Pairs of files in the burst the reads run during (0 skips it).
    #[arg(long, env = "BENCH_API_BURST_FILES", default_value_t = 10)]
    burst_files: u64,
    /// Orders in each of the burst's files.
    #[arg(long, env = "BENCH_API_BURST_ORDERS", default_value_t = 50_000,
          value_parser = workspace::count::<u64>())]
    burst_orders: u64,
    /// The burst's ingests at once: the template's IngestMaxConcurrency.
    #[arg(long, env = "BENCH_API_BURST_WORKERS", default_value_t = 5,
          value_parser = workspace::count::<u64>())]
    burst_workers: u64,
    /// Builds and runs the debug binaries instead of release ones: a quick
    /// check that the task works, whose figures compare with nothing.
    #[arg(long)]
    debug: bool,
}

/// The load needs a few GB (PostgreSQL's WAL and tables, the release
/// build): a full disk would crash the shared PostgreSQL, so refuse early.
const NEEDED_FREE_GB: u64 = 6;

pub async fn run(workspace: &Workspace, args: Args) -> Result<()> {
    workspace::require_on_path("wrk", "`make bench-api` (scripts/local.sh install-wrk)")?;
    let free = free_gb(&[&workspace.root, Path::new("/tmp")])?;
    if free < NEEDED_FREE_GB {
        bail!(
            "only {free} GB free on disk; the benchmark needs about {NEEDED_FREE_GB} GB (cargo clean frees target/)"
        );
    }
    Services::start(workspace).await?;
    if args.debug {
        say("--debug: debug binaries, the figures compare with nothing");
    }
    let bin = workspace
        .build(!args.debug, &["pipeline-local", "orders", "analytics"])
        .await?;
    let mut api = ApiData::new(workspace, "bench_api", "bench-api").await?;
    let result = workspace::interruptible(benchmark(&bin, &args, &mut api)).await;
    api.tear_down().await;
    result
}

async fn benchmark(bin: &Path, args: &Args, api: &mut ApiData) -> Result<()> {
    let ingested = api.load(bin, args.orders).await?;
    say(&format!(
        "ingested in {:.0} s: {}",
        ingested.measured.seconds,
        api_data::accepted_summary(&ingested.reports)
    ));
    let database = postgres::connect(&api.database_url).await?;
    database.batch_execute("VACUUM ANALYZE").await?;
    let stats: String = database
        .query_one(
            "SELECT orders || ' orders, ' || barcodes || ' barcodes, ' || unused_barcodes || ' unused' \
             FROM pipeline_stats",
            &[],
        )
        .await?
        .get(0);
    let customers = (args.orders / 10).max(1);
    let token = api.token(1);

    say(&format!(
        "serving orders on :{} and analytics on :{} (pool {}, RUST_LOG={})",
        args.orders_port,
        args.analytics_port,
        args.pool,
        api_data::rust_log()
    ));
    for (program, port) in [
        ("orders", args.orders_port),
        ("analytics", args.analytics_port),
    ] {
        api.serve(bin, program, port, |command| {
            command
                .env("DATABASE_POOL_SIZE", args.pool.to_string())
                .env("LOCAL_HTTP_ADDR", format!("127.0.0.1:{port}"));
        })
        .await?;
    }

    let (orders, analytics) = (args.orders_port, args.analytics_port);
    let endpoints: [(&str, u16, &str, Option<u64>); 10] = [
        ("GET /health", orders, "/health", None),
        (
            "GET /analytics/top-customers?limit=5",
            analytics,
            "/analytics/top-customers?limit=5",
            None,
        ),
        (
            "GET /analytics/summary",
            analytics,
            "/analytics/summary",
            None,
        ),
        (
            "GET /analytics/unused-barcodes?limit=0",
            analytics,
            "/analytics/unused-barcodes?limit=0",
            None,
        ),
        (
            "GET /analytics/unused-barcodes?limit=100",
            analytics,
            "/analytics/unused-barcodes?limit=100",
            None,
        ),
        (
            "GET /customers/{random}/orders",
            orders,
            "/customers/{}/orders",
            Some(customers),
        ),
        (
            "GET /customers/{random}",
            orders,
            "/customers/{}",
            Some(customers),
        ),
        (
            "GET /orders/{random}",
            orders,
            "/orders/{}",
            Some(args.orders),
        ),
        ("GET /orders?limit=100", orders, "/orders?limit=100", None),
        ("GET /ingestions", analytics, "/ingestions", None),
    ];
    let mut rows = Vec::new();
    for (number, (label, port, path, random_max)) in endpoints.into_iter().enumerate() {
        // With a random id the script makes every request's path; wrk still wants a URL.
        let (url, script) = match random_max {
            Some(max) => {
                let script = api
                    .out
                    .join(format!("random-{}-{number}.lua", api.scratch.stamp));
                std::fs::write(&script, wrk::random_path_script(path, max, &token))?;
                (format!("http://127.0.0.1:{port}/"), Some(script))
            }
            None => (format!("http://127.0.0.1:{port}{path}"), None),
        };
        let wrk_run = |seconds: u32, latency: bool| {
            let mut command = tokio::process::Command::new("wrk");
            command.args(wrk::arguments(args.conns, seconds, latency, &token));
            if let Some(script) = &script {
                command.arg("-s").arg(script);
            }
            command.arg(&url);
            run_wrk(command, &url)
        };
        // Warm up (connections, plans), then measure.
        wrk_run(2, false).await?;
        let output = wrk_run(args.duration, true).await?;
        keep_wrk_output(api, label, &output)?;
        let figures = wrk::parse(&output);
        say(&format!(
            "{label}: p50 {}, p99 {}, {} req/s",
            figures.p50, figures.p99, figures.requests_per_sec
        ));
        rows.push(wrk::row(label, &figures));
    }

    let doubling = during_load::doubling_file(bin, args, api).await?;
    let during = during_load::run(args, api, &token, "loading", doubling).await?;
    rows.extend(during.rows);
    let shape = crate::bench::burst::Burst {
        files: args.burst_files,
        orders: args.burst_orders,
        workers: args.burst_workers,
    };
    let during_burst = if shape.files > 0 {
        let burst = during_load::burst(bin, args, api, shape).await?;
        let during = during_load::run(args, api, &token, "burst", burst).await?;
        rows.extend(during.rows.iter().cloned());
        Some(during)
    } else {
        None
    };
    let burst_note = during_burst.map_or(String::new(), |during| {
        format!(
            "burst: read while {} pairs of files of {} orders went in, {} at once, {:.0} s; {} answers were 5xx.\n",
            shape.files, shape.orders, shape.workers, during.load_secs, during.server_errors
        )
    });

    let cores = workspace::cores();
    let table = format!(
        "\nAPI benchmark: {cores} cores, PostgreSQL {} (fsync=off), {}\n\
         data: {stats}, {customers} customers (tools/datagen --orders {}, loaded by the real ingest path)\n\
         wrk -t2 -c{} -d{}s against {} builds served with LOCAL_HTTP_ADDR (pool {}, RUST_LOG={});\n\
         wrk shares the {cores} cores with the servers and PostgreSQL. {{random}}: a random id per request.\n\n\
         {}\n{}\n\n\
         loading: read while {} more orders (a file that doubles the tables) were ingested, {:.0} s; {} answers were 5xx.\n\
         {burst_note}\
         During a load, two wrk runs ({} connections each, {}) read at once for exactly as long as the files took.\n",
        postgres::server_version(&database).await?,
        workspace::utc_minute(),
        args.orders,
        args.conns,
        args.duration,
        if args.debug { "debug" } else { "release" },
        args.pool,
        api_data::rust_log(),
        wrk::header(),
        rows.join("\n"),
        args.orders,
        during.load_secs,
        during.server_errors,
        (args.conns / 2).max(1),
        match args.during_rate {
            0 => "unpaced: each sends its next request when one is answered".to_owned(),
            rate => format!("paced to about {rate} requests a second per server"),
        },
    );
    print!("{table}");
    std::fs::write(
        api.out.join(format!("results-{}.txt", api.scratch.stamp)),
        table,
    )?;
    Ok(())
}

/// Keeps wrk's report of `label` in .local/bench-api/ beside the results.
fn keep_wrk_output(api: &ApiData, label: &str, output: &str) -> Result<()> {
    let path = api.out.join(format!(
        "wrk-{}-{}.txt",
        api.scratch.stamp,
        wrk::file_part(label)
    ));
    std::fs::write(&path, output).with_context(|| format!("writing {}", path.display()))
}

/// Runs wrk (stopped if the run is interrupted); returns its report.
async fn run_wrk(mut command: tokio::process::Command, url: &str) -> Result<String> {
    let output = command
        .kill_on_drop(true)
        .output()
        .await
        .context("running wrk")?;
    if !output.status.success() {
        bail!(
            "wrk {url} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The free space, in whole GB, of the emptiest of `paths`' file systems.
fn free_gb(paths: &[&Path]) -> Result<u64> {
    let mut least = u64::MAX;
    for path in paths {
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
        // SAFETY: statvfs(3) reads a NUL-terminated path and writes only the
        // struct we pass, which an all-zero value initialises.
        let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("statvfs {}", path.display()));
        }
        let available = stats.f_bavail as u64 * stats.f_frsize as u64;
        least = least.min(available >> 30);
    }
    Ok(least)
}
