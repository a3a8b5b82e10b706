//! The "during a load" phase: the reads a dashboard polls (top customers on
//! the analytics server; a customer and an order, at random, on the orders
//! server) driven by two wrk runs at once while a file as large as the one
//! loaded goes in through the real ingest path. That load at least doubles
//! the tables, so it writes their shadow copies and swaps them in at its
//! commit: readers meet its merge lock, its swap and its COPY's I/O.

use std::path::Path;

use anyhow::{bail, Result};

use super::{keep_wrk_output, run_wrk, wrk, Args};
use crate::api_data::ApiData;
use crate::datasets;
use crate::workspace::say;

/// What the phase measured: a table row per server, and how long the load
/// took against how long the reads ran.
pub struct DuringLoad {
    pub rows: Vec<String>,
    /// Answers of status 500 and up, both servers together.
    pub server_errors: u64,
    pub load_secs: f64,
    pub read_secs: u32,
}

/// Runs the phase; `expected_load_secs` (the first load's time) sets how
/// long wrk runs, so the reads span the load.
pub async fn run(
    bin: &Path,
    args: &Args,
    api: &ApiData,
    token: &str,
    expected_load_secs: f64,
) -> Result<DuringLoad> {
    let data = api.out.join(format!("during-{}", args.orders));
    if !data
        .join(datasets::FILES[1])
        .metadata()
        .is_ok_and(|m| m.len() > 0)
    {
        datasets::generate(
            &data,
            datagen::Config {
                orders: args.orders,
                seed: 3,
                first_order_id: args.orders + 1,
            },
        )?;
    }
    let prefix = "incoming/during/";
    datasets::upload_as(&api.scratch, &data, prefix).await?;
    let keys = datasets::FILES.map(|name| format!("{prefix}{name}"));

    let read_secs = (expected_load_secs.ceil() as u32).max(5);
    let customers = (args.orders / 10).max(1);
    let servers = [
        (
            "loading: GET /analytics/top-customers",
            args.analytics_port,
            wrk::mixed_paths_script(&[("/analytics/top-customers?limit=5", None)], token),
        ),
        (
            "loading: GET /customers|orders/{random}",
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
    let mut reads = Vec::new();
    for (number, (label, port, script)) in servers.iter().enumerate() {
        let path = api
            .out
            .join(format!("during-{}-{number}.lua", api.scratch.stamp));
        std::fs::write(&path, script)?;
        let url = format!("http://127.0.0.1:{port}/");
        let mut command = tokio::process::Command::new("wrk");
        command
            .args(wrk::arguments(
                (args.conns / 2).max(1),
                read_secs,
                true,
                token,
            ))
            .arg("-s")
            .arg(&path)
            .arg(&url);
        reads.push(async move { run_wrk(command, &url).await.map(|out| (*label, out)) });
    }
    say(&format!(
        "during a load: {read_secs} s of reads on both servers while {} orders more are ingested",
        args.orders
    ));
    let out = api.out.join(format!("during-{}.ingest", api.scratch.stamp));
    let (ingested, reads) = tokio::join!(
        datasets::ingest_keys(bin, &api.scratch, &api.database_url, &keys, &out),
        futures_util::future::try_join_all(reads),
    );
    let (ingested, reads) = (ingested?, reads?);
    if ingested.reports.iter().any(|r| r["status"] != "loaded") {
        bail!(
            "during a load: a file was not loaded (see {})",
            ingested.reports_path.display()
        );
    }
    let (mut rows, mut server_errors) = (Vec::new(), 0);
    for (label, output) in reads {
        keep_wrk_output(api, label, &output)?;
        let figures = wrk::parse(&output);
        let Some(errors) = wrk::server_errors(&output) else {
            bail!("{label}: wrk printed no 5xx count:\n{output}");
        };
        say(&format!(
            "{label}: p50 {}, p99 {}, {} req/s, {} non-2xx of which {errors} 5xx",
            figures.p50, figures.p99, figures.requests_per_sec, figures.non_2xx
        ));
        server_errors += errors;
        rows.push(wrk::row(label, &figures));
    }
    Ok(DuringLoad {
        rows,
        server_errors,
        load_secs: ingested.measured.seconds,
        read_secs,
    })
}
