//! Operators' metrics: CloudWatch embedded metric format (EMF) documents,
//! JSON lines on stdout beside the logs, which CloudWatch Logs turns into
//! metrics in the [`NAMESPACE`] namespace (no API call, no agent). Code
//! records through the `metrics` facade; `metrics_cloudwatch_embedded`
//! collects and writes the documents: after each Lambda invocation (see
//! `lambda` below), or every few seconds in a local server. Locally the
//! same lines appear in the logs (`.local/logs/watch.log`).
//!
//! Every metric has the dimension `Function` (the Lambda function's name,
//! or the local program's); the README lists them under "Metrics".

use std::time::Duration;

use metrics::{counter, describe_counter, describe_histogram, histogram, Unit};
pub use metrics_cloudwatch_embedded::lambda;
use metrics_cloudwatch_embedded::Collector;

use crate::ingest::{IngestReport, IngestStatus};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "OrderPipeline";

/// Data lines of a loaded file.
pub const ROWS_READ: &str = "RowsRead";
/// Rows a loaded file added or changed.
pub const ROWS_ACCEPTED: &str = "RowsAccepted";
/// Rows a loaded file rejected (invalid, copies, conflicts).
pub const ROWS_REJECTED: &str = "RowsRejected";
/// Rows repeating a barcode or order seen before.
pub const DUPLICATE_ROWS: &str = "DuplicateRows";
/// Files ingested, by `Status` (loaded, rejected, already_ingested, superseded).
pub const FILES: &str = "Files";
/// Reading, parsing, staging and merging a file.
pub const LOAD_MS: &str = "LoadMilliseconds";
/// Bringing processed_orders.csv up to date after a load.
pub const PUBLISH_MS: &str = "PublishMilliseconds";
/// From the object's creation in the bucket (S3's LastModified) to the
/// load's commit.
pub const INGEST_LAG_MS: &str = "IngestLagMilliseconds";
/// An API request, by `Route` (the route's pattern) and `Status` (the code).
pub const REQUEST_MS: &str = "RequestMilliseconds";
/// Once per process, at its first invocation (Lambda).
pub const COLD_START: &str = "ColdStart";

/// How often a local server (not Lambda) writes what it collected.
pub const LOCAL_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// The collector's settings for `function` (the dimension): in Lambda
/// (`AWS_LAMBDA_FUNCTION_NAME` set) its name, the cold start metric and the
/// request id.
pub fn builder(function: &str) -> metrics_cloudwatch_embedded::Builder {
    let builder = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        // A file without rejected rows is a 0, not missing data: the
        // rejected-rows rate's alarm divides by what was read.
        .emit_zeros(true);
    match lambda_function_name() {
        Some(name) => builder
            .with_dimension("Function", name)
            .lambda_cold_start_metric(COLD_START)
            .with_lambda_request_id("RequestId"),
        None => builder.with_dimension("Function", function.to_owned()),
    }
}

fn lambda_function_name() -> Option<String> {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .ok()
        .filter(|name| !name.is_empty())
}

/// Installs the collector for `function`, once per process; outside Lambda
/// it writes every [`LOCAL_FLUSH_INTERVAL`] (a tokio task: call it inside
/// the runtime). `None` when a collector is installed already.
pub fn init(function: &str) -> Option<&'static Collector> {
    let builder = match lambda_function_name() {
        Some(_) => builder(function),
        None => builder(function).with_auto_flush_interval(LOCAL_FLUSH_INTERVAL),
    };
    let collector = builder.init().ok()?;
    describe();
    Some(collector)
}

/// Units, so CloudWatch shows milliseconds as milliseconds ([`init`] calls
/// it).
pub fn describe() {
    for name in [
        ROWS_READ,
        ROWS_ACCEPTED,
        ROWS_REJECTED,
        DUPLICATE_ROWS,
        FILES,
    ] {
        describe_counter!(name, Unit::Count, name);
    }
    for name in [LOAD_MS, PUBLISH_MS, INGEST_LAG_MS, REQUEST_MS] {
        describe_histogram!(name, Unit::Milliseconds, name);
    }
}

/// What one file's ingest did.
pub fn record_ingest(report: &IngestReport) {
    let status = match report.status {
        IngestStatus::Loaded => "loaded",
        IngestStatus::Rejected => "rejected",
        IngestStatus::AlreadyIngested => "already_ingested",
        IngestStatus::Superseded => "superseded",
    };
    counter!(FILES, "Status" => status).increment(1);
    if report.status != IngestStatus::Loaded {
        return;
    }
    let counts = &report.counts;
    counter!(ROWS_READ).increment(counts.rows_read);
    counter!(ROWS_ACCEPTED).increment(counts.accepted);
    counter!(ROWS_REJECTED).increment(counts.rejected);
    counter!(DUPLICATE_ROWS).increment(counts.duplicates);
    histogram!(LOAD_MS).record(report.timings.load_ms as f64);
    histogram!(PUBLISH_MS).record(report.timings.publish_ms as f64);
    if let Some(lag) = report.timings.lag_ms {
        histogram!(INGEST_LAG_MS).record(lag as f64);
    }
}

/// One API request: its route pattern (never the path, whose ids would
/// make a metric per order) and status.
pub fn record_request(route: &str, status: u16, elapsed_ms: f64) {
    histogram!(REQUEST_MS, "Route" => route.to_owned(), "Status" => status.to_string())
        .record(elapsed_ms);
}
