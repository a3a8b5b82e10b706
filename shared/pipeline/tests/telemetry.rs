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

/// The CSV parser runs on a blocking thread: what it logs still carries the
/// span of the object it reads (bucket, key, version).
#[tokio::test]
async fn a_line_logged_on_the_parser_thread_names_the_object() {
    let pipeline = pipeline_test_support::TestPipeline::create().await;
    let key = "incoming/orders.csv";
    let version_id = pipeline
        .bucket
        .put(key, "order_id,customer_id\n1,10\n")
        .await
        .expect("a versioned bucket");
    let logs = LogCapture::default();
    let guard = logs.install("info,order_pipeline::ingest=debug");
    let object = order_pipeline::storage::ObjectRef {
        version_id: Some(version_id.clone()),
        ..order_pipeline::storage::ObjectRef::new(&pipeline.bucket.name, key)
    };
    pipeline.ingestor.ingest(&object).await.unwrap();
    drop(guard);
    let text = logs.text();
    let header_read: serde_json::Value = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"] == "header read")
        .unwrap_or_else(|| panic!("no line from the parser thread: {text}"));
    let span = &header_read["span"];
    assert_eq!(
        span["bucket"],
        pipeline.bucket.name.as_str(),
        "{header_read}"
    );
    assert_eq!(span["key"], key, "{header_read}");
    assert_eq!(span["version_id"], version_id.as_str(), "{header_read}");
}
