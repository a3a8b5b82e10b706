//! The functions' log subscriber: the caps on chatty dependencies hold
//! whatever RUST_LOG asks for.

use order_pipeline::telemetry::{filter, subscriber};
use pipeline_test_support::LogCapture;
use tracing_subscriber::util::SubscriberInitExt;

#[test]
fn no_directive_lifts_a_cap() {
    let logs = LogCapture::default();
    let rust_log = "trace,tokio_postgres::query=trace,lambda_runtime::layers=trace";
    {
        let _capture = subscriber(filter(Some(rust_log), None), logs.clone()).set_default();
        tracing::debug!(target: "tokio_postgres::query", "parameters: capped-1");
        tracing::trace!(target: "lambda_runtime::layers::api_response", "raw event: capped-2");
        tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", "request: capped-3");
        tracing::trace!(target: "rustls::client", "ticket: capped-4");
        tracing::debug!(target: "reqwest::redirect", "url: capped-5");
        tracing::debug!(target: "lambda_runtime::runtime", "allowed-1");
        tracing::trace!(target: "order_pipeline::postgres", "allowed-2");
        tracing::info!(target: "tokio_postgres::connection", "allowed-3");
    }
    let text = logs.text();
    for n in 1..=5 {
        assert!(!text.contains(&format!("capped-{n}")), "capped-{n}: {text}");
    }
    for n in 1..=3 {
        assert!(
            text.contains(&format!("allowed-{n}")),
            "allowed-{n}: {text}"
        );
    }
}
