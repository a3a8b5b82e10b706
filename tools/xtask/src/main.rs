//! `cargo xtask`: the project's orchestration in Rust. The Makefile is the
//! front door (`make bench`, `make bench-api`, `make fuzz-api`, and the
//! bounded API fuzzing at the end of `make test`); scripts/ keeps the
//! installers and the service control (PostgreSQL, LocalStack) these call.
//!
//! Every task works against the private PostgreSQL (127.0.0.1:$PG_PORT) and
//! LocalStack (127.0.0.1:4566) of scripts/local.sh, in a database and bucket
//! of its own that it removes at the end, and talks to nothing but 127.0.0.1.

mod api_data;
mod bench;
mod bench_api;
mod child;
mod dashboard;
mod datasets;
mod fuzz_api;
mod postgres;
mod scratch;
mod services;
mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    about = "The order pipeline's orchestration: benchmarks, API fuzzing, the dashboard in Chromium"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Times the real ingest path (LocalStack S3 -> the ingest code ->
    /// PostgreSQL -> processed_orders.csv back to S3) on generated data
    /// against the floor of a plain COPY plus the same keys (`make bench`).
    Bench(bench::Args),
    /// Loads generated data through the real ingest path, serves the orders
    /// and analytics routers (release builds) and drives each endpoint with
    /// wrk (`make bench-api`).
    BenchApi(bench_api::Args),
    /// schemathesis, every check, against the API over generated data
    /// (`make fuzz-api`; `make test` runs a bounded one).
    FuzzApi(fuzz_api::Args),
    /// The dashboard in headless Chromium against the real local stack over
    /// generated data (part of `make test`).
    Dashboard(dashboard::Args),
}

impl Task {
    fn name(&self) -> &'static str {
        match self {
            Task::Bench(_) => "bench",
            Task::BenchApi(_) => "bench-api",
            Task::FuzzApi(_) => "fuzz-api",
            Task::Dashboard(_) => "dashboard",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = cli.task.name();
    workspace::use_localstack_credentials();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let result = runtime.block_on(async {
        let workspace = workspace::Workspace::locate()?;
        match cli.task {
            Task::Bench(args) => bench::run(&workspace, args).await,
            Task::BenchApi(args) => bench_api::run(&workspace, args).await,
            Task::FuzzApi(args) => fuzz_api::run(&workspace, args).await,
            Task::Dashboard(args) => dashboard::run(&workspace, args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<workspace::Interrupted>() => ExitCode::from(130),
        Err(error) => {
            eprintln!("{name}: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The task a command line asks for (`args` without the program name).
    pub fn task(args: &[&str]) -> Result<Task, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .map(|cli| cli.task)
    }

    #[test]
    fn every_task_parses_with_its_defaults() {
        for (task, name) in [
            ("bench", "bench"),
            ("bench-api", "bench-api"),
            ("fuzz-api", "fuzz-api"),
        ] {
            let cli = Cli::try_parse_from(["xtask", task]).unwrap();
            assert_eq!(cli.task.name(), name);
        }
        assert!(Cli::try_parse_from(["xtask", "benchmark"]).is_err());
    }
}
