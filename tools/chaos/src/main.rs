//! `chaos`: runs the fault matrix against the real pipeline and prints a
//! table (case, runs, passed, rows lost, rows doubled, retries, time).
//! Exits non-zero when any run fails. `make chaos` drives it.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use chaos::cases::{Chaos, Fault, Reference, RunOutcome};
use chaos::load_cases::LARGE_FIRST_ORDER_ID;
use chaos::postgres_cluster::PostgresCluster;
use chaos::world::Settings;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Injects faults into the real pipeline and checks nothing is lost or doubled")]
struct Args {
    /// Runs per case (each with its own seed: the base seed plus the run's index).
    #[arg(long, env = "CHAOS_RUNS", default_value_t = 10)]
    runs: u64,
    /// Base seed; a failed run prints the seed that replays it alone.
    #[arg(long, env = "CHAOS_SEED")]
    seed: Option<u64>,
    /// Cases to run, comma-separated (default: all).
    #[arg(long, env = "CHAOS_CASES", value_delimiter = ',')]
    cases: Vec<String>,
    /// Orders in the fault cases' first orders file (barcodes: about 3.3
    /// per order); the increment has a quarter as many.
    #[arg(long, env = "CHAOS_ORDERS", default_value_t = 20_000)]
    orders: u64,
    /// Orders in the large file the sales and API cases load.
    #[arg(long, env = "CHAOS_LARGE_ORDERS", default_value_t = 100_000)]
    large_orders: u64,
    /// LocalStack (never stopped by these cases).
    #[arg(long, default_value = "http://127.0.0.1:4566")]
    localstack: String,
    /// Port of the private PostgreSQL cluster the cases stop and start.
    #[arg(long, default_value_t = 54339)]
    pg_port: u16,
    #[arg(long, default_value = "/usr/lib/postgresql/15/bin")]
    pg_bin: PathBuf,
    /// Where the workspace's binaries are.
    #[arg(long, default_value = "target/debug")]
    bin_dir: PathBuf,
    /// Inputs and logs (the cluster lives in /tmp: PostgreSQL must reach it).
    #[arg(long, default_value = ".local/chaos")]
    work_dir: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    // The harness's own pool loses its connections whenever a case stops
    // PostgreSQL: expected, so not worth a warning each time.
    order_pipeline::telemetry::init_for_cli("warn,deadpool.postgres=error");
    // Ctrl-C drops the run, and with it the cluster (stopped on drop).
    let ran = tokio::select! {
        ran = run(Args::parse()) => ran,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    match ran {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("chaos: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// A line of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Fault(Fault),
    SalesDuringLoad,
    ApiDuringLoad,
}

impl Case {
    fn all() -> Vec<Case> {
        let mut all: Vec<Case> = Fault::ALL.into_iter().map(Case::Fault).collect();
        all.extend([Case::SalesDuringLoad, Case::ApiDuringLoad]);
        all
    }

    fn name(self) -> &'static str {
        match self {
            Case::Fault(fault) => fault.name(),
            Case::SalesDuringLoad => "sales-during-load",
            Case::ApiDuringLoad => "api-during-load",
        }
    }

    /// The files the case's clean run loads, in order.
    fn clean_files(self, chaos: &Chaos) -> Vec<PathBuf> {
        match self {
            Case::Fault(_) => chaos.files.clone(),
            Case::SalesDuringLoad => chaos.files[..2]
                .iter()
                .chain(&chaos.large_files)
                .cloned()
                .collect(),
            Case::ApiDuringLoad => chaos.large_files.clone(),
        }
    }

    async fn run(self, chaos: &Chaos, seed: u64, reference: &Reference) -> Result<RunOutcome> {
        match self {
            Case::Fault(fault) => chaos.run(fault, seed, reference).await,
            Case::SalesDuringLoad => chaos.sales_during_load(seed, reference).await,
            Case::ApiDuringLoad => chaos.api_during_load(seed, reference).await,
        }
    }
}

/// One case's line of the table.
#[derive(Default)]
struct Tally {
    runs: u64,
    passed: u64,
    rows_lost: u64,
    rows_doubled: u64,
    retries: u64,
    time: Duration,
    /// How often the fault landed where ("killed mid-load": 9).
    landed: std::collections::BTreeMap<&'static str, u64>,
}

async fn run(args: Args) -> Result<bool> {
    anyhow::ensure!(
        args.localstack.starts_with("http://127.0.0.1"),
        "--localstack must be on 127.0.0.1, not {}",
        args.localstack
    );
    let cases = selected(&args.cases)?;
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    eprintln!("chaos: seed {seed}, {} run(s) per case", args.runs);
    let log_dir = args.work_dir.join("logs");
    std::fs::create_dir_all(&log_dir)?;
    let inputs = args.work_dir.join("inputs");
    let files = generate_inputs(&inputs, args.orders)?;
    let large_files = generate(
        &inputs,
        "-large",
        datagen::Config {
            orders: args.large_orders,
            seed: 3,
            first_order_id: LARGE_FIRST_ORDER_ID,
        },
    )?;
    let cluster = PostgresCluster::start_new(
        &args.pg_bin,
        &PathBuf::from(format!("/tmp/order-pipeline-chaos-pg-{}", args.pg_port)),
        args.pg_port,
    )?;
    let chaos = Chaos {
        settings: Settings {
            bin_dir: args.bin_dir.clone(),
            localstack: args.localstack.clone(),
            log_dir: log_dir.clone(),
        },
        cluster,
        files,
        large_files,
        large_orders: args.large_orders,
    };
    eprintln!("chaos: logs in {}", log_dir.display());

    let mut table = Vec::new();
    for case in cases {
        let reference = chaos
            .clean_run(
                &format!("chaos-clean-{}", case.name()),
                &case.clean_files(&chaos),
            )
            .await
            .with_context(|| format!("the clean run for {}", case.name()))?;
        let mut tally = Tally::default();
        for run in 0..args.runs {
            let run_seed = seed.wrapping_add(run);
            let started = Instant::now();
            let outcome = case
                .run(&chaos, run_seed, &reference)
                .await
                .unwrap_or_else(|error| RunOutcome {
                    problems: vec![format!("{error:#}")],
                    ..RunOutcome::default()
                });
            tally.time += started.elapsed();
            tally.runs += 1;
            tally.rows_lost += outcome.rows_lost;
            tally.rows_doubled += outcome.rows_doubled;
            tally.retries += outcome.retries;
            for landed in outcome.landed {
                *tally.landed.entry(landed).or_default() += 1;
            }
            if outcome.problems.is_empty() {
                tally.passed += 1;
            } else {
                eprintln!(
                    "chaos: {} run {run} FAILED (replay: CHAOS_CASES={} CHAOS_SEED={run_seed} CHAOS_RUNS=1 make chaos):",
                    case.name(),
                    case.name()
                );
                for problem in &outcome.problems {
                    eprintln!("  - {problem}");
                }
            }
        }
        eprintln!(
            "chaos: {} {}/{} passed",
            case.name(),
            tally.passed,
            tally.runs
        );
        table.push((case, tally));
    }
    print_table(&table);
    Ok(table.iter().all(|(_, t)| t.passed == t.runs))
}

fn selected(names: &[String]) -> Result<Vec<Case>> {
    if names.is_empty() {
        return Ok(Case::all());
    }
    names
        .iter()
        .map(|name| {
            Case::all()
                .into_iter()
                .find(|c| c.name() == name)
                .with_context(|| {
                    let known: Vec<_> = Case::all().iter().map(|c| c.name()).collect();
                    format!("unknown case {name:?}; the cases are {}", known.join(", "))
                })
        })
        .collect()
}

/// The four files every fault run loads, in order: a first orders and
/// barcodes load, then an increment of each (order ids beyond the first
/// files').
fn generate_inputs(dir: &Path, orders: u64) -> Result<Vec<PathBuf>> {
    let first = generate(
        dir,
        "",
        datagen::Config {
            orders,
            seed: 1,
            first_order_id: 1,
        },
    )?;
    let increment = generate(
        dir,
        "-2",
        datagen::Config {
            orders: (orders / 4).max(1),
            seed: 2,
            first_order_id: orders + 1,
        },
    )?;
    Ok([first, increment].concat())
}

/// Writes `orders<suffix>.csv` and `barcodes<suffix>.csv` into `dir`.
fn generate(dir: &Path, suffix: &str, config: datagen::Config) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let paths = vec![
        dir.join(format!("orders{suffix}.csv")),
        dir.join(format!("barcodes{suffix}.csv")),
    ];
    let create = |path: &Path| -> Result<BufWriter<File>> {
        Ok(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ))
    };
    datagen::generate(&config, create(&paths[0])?, create(&paths[1])?)
        .context("generating the inputs")?;
    Ok(paths)
}

fn print_table(table: &[(Case, Tally)]) {
    println!(
        "{:<22} {:>5} {:>7} {:>10} {:>13} {:>8} {:>9}",
        "case", "runs", "passed", "rows lost", "rows doubled", "retries", "time s"
    );
    for (fault, t) in table {
        println!(
            "{:<22} {:>5} {:>7} {:>10} {:>13} {:>8} {:>9.1}",
            fault.name(),
            t.runs,
            t.passed,
            t.rows_lost,
            t.rows_doubled,
            t.retries,
            t.time.as_secs_f64()
        );
    }
    println!();
    for (fault, t) in table {
        let landed: Vec<String> = t
            .landed
            .iter()
            .map(|(what, n)| format!("{n}x {what}"))
            .collect();
        println!("{}: {}", fault.name(), landed.join(", "));
    }
}
