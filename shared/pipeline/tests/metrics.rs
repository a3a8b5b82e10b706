//! The operators' metrics an ingest writes, as CloudWatch reads them: EMF
//! documents in the OrderPipeline namespace with the Function dimension,
//! the file's row counts, its load and publish times and its lag. One test
//! in this binary: it installs the process's one metrics recorder.

use pipeline_test_support::TestPipeline;
use serde_json::Value;

/// The documents written since the last flush, by metric name: (the
/// document, its unit).
fn documents(written: &[u8]) -> Vec<(String, Value, String)> {
    let text = std::str::from_utf8(written).expect("UTF-8");
    let mut found = Vec::new();
    for line in text.lines() {
        let document: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let directive = &document["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "OrderPipeline", "{line}");
        for metric in directive["Metrics"].as_array().expect("metrics") {
            found.push((
                metric["Name"].as_str().unwrap().to_owned(),
                document.clone(),
                metric["Unit"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    found
}

#[tokio::test]
async fn an_ingest_writes_its_counts_times_and_lag_as_embedded_metrics() {
    // As the function's, flushed by the test instead of after an invocation.
    let collector = order_pipeline::metrics::builder("ingest")
        .init()
        .expect("the one recorder of this test binary");
    order_pipeline::metrics::describe();
    let pipeline = TestPipeline::create().await;
    let orders = "order_id,customer_id\n1,10\n2,11\nx,12\n";
    pipeline.bucket.put("incoming/orders.csv", orders).await;
    let report = pipeline.ingest_key("incoming/orders.csv").await;
    let again = pipeline.ingest_key("incoming/orders.csv").await;
    assert_eq!(
        again.status,
        order_pipeline::ingest::IngestStatus::AlreadyIngested
    );

    let mut written = Vec::new();
    collector.flush(&mut written).expect("flushed");
    let found = documents(&written);
    let value = |name: &str| -> (Value, String) {
        let (_, document, unit) = found
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} in {}", String::from_utf8_lossy(&written)));
        assert_eq!(document["Function"], "ingest", "{document}");
        (document[name].clone(), unit.clone())
    };
    assert_eq!(value("RowsRead").0, 3);
    assert_eq!(value("RowsAccepted").0, report.counts.accepted);
    assert_eq!(value("RowsRejected").0, 1);
    assert_eq!(value("DuplicateRows").0, 0);
    assert_eq!(value("RowsRead").1, "Count");
    assert_eq!(value("LoadMilliseconds").1, "Milliseconds");
    assert_eq!(value("PublishMilliseconds").1, "Milliseconds");
    let (lag, unit) = value("IngestLagMilliseconds");
    assert_eq!(unit, "Milliseconds");
    assert!(
        report.timings.lag_ms.is_some(),
        "S3 says when the object was created"
    );
    assert!(!lag.is_null(), "{lag}");
    // One document per Files status: a load and an already-ingested delivery.
    let statuses: Vec<&Value> = found
        .iter()
        .filter(|(n, _, _)| n == "Files")
        .map(|(_, document, _)| &document["Status"])
        .collect();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert!(statuses.contains(&&Value::from("loaded")));
    assert!(statuses.contains(&&Value::from("already_ingested")));
}
