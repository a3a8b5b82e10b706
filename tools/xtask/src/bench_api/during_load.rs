//! The "during a load" phases: the reads a dashboard polls (top customers
//! on the analytics server; a customer and an order, at random, on the
//! orders server) driven by two wrk runs at once for exactly as long as
//! files go in through the real ingest path (wrk is stopped with SIGINT, on
//! which it reports, when the last file is in). Two loads: a file as large
//! as the one loaded, which at least doubles the tables, so it writes their
//! shadow copies and swaps them in at its commit as a first load does
//! (readers meet its merge lock, its swap and its COPY's I/O); and a burst
//! of files ingested by as many workers as the ingest function runs at
//! once, with their merges one after another and their publishes.
//!
//! The reads are paced (`--during-rate`, 100 a second per server by
//! default), as a few dashboards polling are: unpaced, wrk answers how long
//! a request waits behind its own others on a machine the load already
//! keeps busy, not how long the servers take.

use std::future::Future;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::{keep_wrk_output, wrk, Args};
use crate::api_data::ApiData;
use crate::bench::burst::{self, Burst};
use crate::datasets::{self, Ingested};
use crate::workspace::say;

/// What a phase measured: a table row per server, and how long the load
/// took.
pub struct DuringLoad {
    pub rows: Vec<String>,
    /// Answers of status 500 and up, both servers together.
    pub server_errors: u64,
    pub load_secs: f64,
}

/// wrk's duration: an upper bound, since it is stopped when the load ends.
const READS_AT_MOST_SECS: u32 = 3600;

/// The file that doubles the tables: as many orders as were loaded, with
/// ids after theirs.
pub async fn doubling_file<'a>(
    bin: &Path,
    args: &Args,
    api: &'a ApiData,
) -> Result<impl Future<Output = Result<Vec<Ingested>>> + 'a> {
    let data = api.out.join(format!("during-{}", args.orders));
    generate_once(
        &data,
        datagen::Config {
            orders: args.orders,
            seed: 3,
            first_order_id: args.orders + 1,
        },
    )?;
    let prefix = "incoming/during/";
    datasets::upload_as(&api.scratch, &data, prefix).await?;
    let keys = datasets::FILES.map(|name| format!("{prefix}{name}"));
    let out = api.out.join(format!("during-{}.ingest", api.scratch.stamp));
    let (bin, scratch, url) = (bin.to_owned(), &api.scratch, api.database_url.clone());
    Ok(async move {
        Ok(vec![
            datasets::ingest_keys(&bin, scratch, &url, &keys, &out).await?,
        ])
    })
}

/// The burst: its pairs after the doubling file's orders, dealt out to its
/// workers.
pub async fn burst<'a>(
    bin: &Path,
    args: &Args,
    api: &'a ApiData,
    shape: Burst,
) -> Result<impl Future<Output = Result<Vec<Ingested>>> + 'a> {
    let generated = burst::generate(&api.out, shape, 2 * args.orders + 1)?;
    let keys_of_worker = burst::upload(&api.scratch, &generated, shape.workers).await?;
    let out = api.out.join(format!("burst-{}", api.scratch.stamp));
    let (bin, scratch, url) = (bin.to_owned(), &api.scratch, api.database_url.clone());
    Ok(async move { burst::ingest(&bin, scratch, &url, &keys_of_worker, &out).await })
}

/// Runs `load` with the reads going on; `phase` names the rows.
pub async fn run(
    args: &Args,
    api: &ApiData,
    token: &str,
    phase: &str,
    load: impl Future<Output = Result<Vec<Ingested>>>,
) -> Result<DuringLoad> {
    let customers = (args.orders / 10).max(1);
    let servers = [
        (
            format!("{phase}: GET /analytics/top-customers"),
            args.analytics_port,
            wrk::mixed_paths_script(&[("/analytics/top-customers?limit=5", None)], token),
        ),
        (
            format!("{phase}: GET /customers|orders/{{random}}"),
            args.orders_port,
            wrk::mixed_paths_script(
                &[
                    ("/customers/{}", Some(customers)),
                    ("/orders/{}", Some(args.orders)),
                ],
                token,
            ),
        ),
    ];
    let connections = (args.conns / 2).max(1);
    let mut reads = Vec::new();
    for (number, (label, port, script)) in servers.into_iter().enumerate() {
        let path = api.out.join(format!(
            "{}-{}-{number}.lua",
            wrk::file_part(phase),
            api.scratch.stamp
        ));
        std::fs::write(&path, wrk::paced(script, args.during_rate, connections))?;
        let url = format!("http://127.0.0.1:{port}/");
        let child = tokio::process::Command::new("wrk")
            .args(wrk::arguments(connections, READS_AT_MOST_SECS, true, token))
            .arg("-s")
            .arg(&path)
            .arg(&url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("running wrk")?;
        reads.push((label, url, child));
    }
    say(&format!(
        "{phase}: reads on both servers while the files go in"
    ));
    let started = Instant::now();
    let ingested = load.await;
    let load_secs = started.elapsed().as_secs_f64();
    let mut outputs = Vec::new();
    for (label, url, child) in reads {
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) on our own child's pid; wrk reports on SIGINT.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
        }
        let output = child.wait_with_output().await.context("waiting for wrk")?;
        if !output.status.success() {
            bail!(
                "wrk {url} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        outputs.push((label, String::from_utf8_lossy(&output.stdout).into_owned()));
    }
    ingested?;
    let (mut rows, mut server_errors) = (Vec::new(), 0);
    for (label, output) in outputs {
        keep_wrk_output(api, &label, &output)?;
        let figures = wrk::parse(&output);
        let Some(errors) = wrk::server_errors(&output) else {
            bail!("{label}: wrk printed no 5xx count:\n{output}");
        };
        say(&format!(
            "{label}: p50 {}, p99 {}, {} req/s, {} non-2xx of which {errors} 5xx",
            figures.p50, figures.p99, figures.requests_per_sec, figures.non_2xx
        ));
        server_errors += errors;
        rows.push(wrk::row(&label, &figures));
    }
    Ok(DuringLoad {
        rows,
        server_errors,
        load_secs,
    })
}

/// Generates `config`'s files into `dir` unless an earlier run left them.
fn generate_once(dir: &Path, config: datagen::Config) -> Result<()> {
    let generated = dir
        .join(datasets::FILES[1])
        .metadata()
        .is_ok_and(|m| m.len() > 0);
    if !generated {
        datasets::generate(dir, config)?;
    }
    Ok(())
}
