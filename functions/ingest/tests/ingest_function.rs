//! The ingest function's handler against real LocalStack S3 and a fresh
//! PostgreSQL database per test.

use order_pipeline::config::PROCESSED_ORDERS_KEY;
use order_pipeline::testing::TestPipeline;
use serde_json::{json, Value};

const ORDERS: &str = "order_id,customer_id\n1,10\n2,11\n3,10\n4,12\n";
const BARCODES: &str = "barcode,order_id\n0001,1\n0002,1\n0003,2\n0001,3\n0004,\n0005,2\n";

async fn fixture() -> TestPipeline {
    TestPipeline::create().await
}

fn sqs_wrap(messages: &[(&str, Value)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body.to_string(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:test",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test]
async fn s3_events_load_rows_and_write_processed_orders() {
    let f = fixture().await;
    f.bucket.put("incoming/orders.csv", ORDERS).await;
    f.bucket.put("incoming/my barcodes.csv", BARCODES).await;

    let answer = ingest::handle_event(&f.ingestor, f.bucket.put_event("incoming/orders.csv"))
        .await
        .unwrap();
    assert_eq!(answer["reports"][0]["kind"], "orders");
    assert_eq!(answer["reports"][0]["counts"]["accepted"], 4);
    // The key arrives form-encoded ("my+barcodes.csv") and must be decoded.
    let answer = ingest::handle_event(&f.ingestor, f.bucket.put_event("incoming/my barcodes.csv"))
        .await
        .unwrap();
    let report = &answer["reports"][0];
    assert_eq!(report["kind"], "barcodes");
    assert_eq!(report["counts"]["rows_read"], 6);
    assert_eq!(report["counts"]["duplicates"], 1);

    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 4);
    assert_eq!(f.scalar("SELECT count(*) FROM barcodes").await, 5);
    assert_eq!(
        f.scalar("SELECT order_id FROM barcodes WHERE barcode = '0001'")
            .await,
        1,
        "the first occurrence of a barcode wins"
    );
    assert_eq!(
        f.scalar("SELECT count(*) FROM barcodes WHERE order_id IS NULL")
            .await,
        1
    );

    let processed = f.bucket.get_text(PROCESSED_ORDERS_KEY).await.unwrap();
    assert_eq!(
        processed,
        "customer_id,order_id,barcodes\n10,1,\"[0001, 0002]\"\n11,2,\"[0003, 0005]\"\n"
    );
}

#[tokio::test]
async fn files_in_either_order_give_the_same_result() {
    let f = fixture().await;
    f.bucket.put("incoming/orders.csv", ORDERS).await;
    f.bucket.put("incoming/barcodes.csv", BARCODES).await;
    ingest::handle_event(&f.ingestor, f.bucket.put_event("incoming/barcodes.csv"))
        .await
        .unwrap();
    // Barcodes alone: their orders are unknown yet, so nothing is processed.
    assert_eq!(
        f.bucket.get_text(PROCESSED_ORDERS_KEY).await.unwrap(),
        "customer_id,order_id,barcodes\n"
    );
    ingest::handle_event(&f.ingestor, f.bucket.put_event("incoming/orders.csv"))
        .await
        .unwrap();
    assert_eq!(
        f.bucket.get_text(PROCESSED_ORDERS_KEY).await.unwrap(),
        "customer_id,order_id,barcodes\n10,1,\"[0001, 0002]\"\n11,2,\"[0003, 0005]\"\n"
    );
}

#[tokio::test]
async fn test_events_and_objects_outside_incoming_are_ignored() {
    let f = fixture().await;
    f.bucket.put("elsewhere/orders.csv", ORDERS).await;
    f.bucket.put("incoming/notes.txt", "hello").await;

    let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent",
                            "Time": "2026-11-21T12:00:00Z", "Bucket": f.bucket.name});
    let answer = ingest::handle_event(&f.ingestor, test_event.clone())
        .await
        .unwrap();
    assert_eq!(answer["reports"], json!([]));

    for key in ["elsewhere/orders.csv", "incoming/notes.txt"] {
        let answer = ingest::handle_event(&f.ingestor, f.bucket.put_event(key))
            .await
            .unwrap();
        assert_eq!(answer["reports"], json!([]), "{key}");
        assert_eq!(answer["skipped"], json!([key]));
    }

    // The same through SQS: both succeed (nothing to retry), nothing is stored.
    let answer = ingest::handle_event(
        &f.ingestor,
        sqs_wrap(&[
            ("m1", test_event),
            ("m2", f.bucket.put_event("elsewhere/orders.csv")),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 0);
    assert!(f.bucket.get_text(PROCESSED_ORDERS_KEY).await.is_none());
}

#[tokio::test]
async fn only_the_failing_sqs_record_is_reported_for_retry() {
    let f = fixture().await;
    f.bucket.put("incoming/orders.csv", ORDERS).await;
    let answer = ingest::handle_event(
        &f.ingestor,
        sqs_wrap(&[
            ("good", f.bucket.put_event("incoming/orders.csv")),
            (
                "missing",
                f.bucket.put_event("incoming/deleted-before-ingest.csv"),
            ),
            ("garbage", json!("not an s3 notification")),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "missing"}, {"itemIdentifier": "garbage"}]})
    );
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 4);
}

#[tokio::test]
async fn a_direct_event_for_a_missing_object_fails_so_lambda_retries() {
    let f = fixture().await;
    let error = ingest::handle_event(&f.ingestor, f.bucket.put_event("incoming/nope.csv"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("incoming/nope.csv"), "{error}");
}

#[tokio::test]
async fn a_broken_file_is_rejected_whole_and_stores_nothing() {
    let f = fixture().await;
    // Valid rows first, then bytes that are not UTF-8: nothing may be kept.
    let mut body = b"order_id,customer_id\n1,10\n2,11\n".to_vec();
    body.extend_from_slice(b"3,\xff\xfe\n");
    f.bucket.put("incoming/broken.csv", body).await;
    f.bucket.put("incoming/unknown.csv", "a,b\n1,2\n").await;

    for key in ["incoming/broken.csv", "incoming/unknown.csv"] {
        let answer = ingest::handle_event(&f.ingestor, f.bucket.put_event(key))
            .await
            .unwrap();
        let report = &answer["reports"][0];
        assert_eq!(report["status"], "rejected", "{key}: {report}");
        assert!(report["error"].as_str().unwrap().len() > 10, "{report}");
    }
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 0);
}

#[tokio::test]
async fn bad_rows_are_reported_and_good_neighbours_kept() {
    let f = fixture().await;
    f.bucket
        .put(
            "incoming/orders.csv",
            "order_id,customer_id\n1,10\nabc,11\n3,-1\n4,12\n",
        )
        .await;
    let answer = ingest::handle_event(&f.ingestor, f.bucket.put_event("incoming/orders.csv"))
        .await
        .unwrap();
    let report = &answer["reports"][0];
    assert_eq!(report["counts"]["rejected"], 2);
    let rejected: Vec<&Value> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["severity"] == "rejected")
        .collect();
    assert_eq!(
        (&rejected[0]["line"], &rejected[0]["field"]),
        (&json!(3), &json!("order_id"))
    );
    assert_eq!(
        (&rejected[1]["line"], &rejected[1]["field"]),
        (&json!(4), &json!("customer_id"))
    );
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 2);
}

/// The fixtures in events/ (used with `cargo lambda invoke`) must stay valid
/// events for the sample files: replayed here against a bucket of our own.
#[tokio::test]
async fn the_event_fixtures_ingest_the_sample_files() {
    for name in ["s3-put.json", "sqs-s3-put.json"] {
        let f = fixture().await;
        f.bucket
            .put(
                "incoming/orders.csv",
                include_str!("../../../data/orders.csv"),
            )
            .await;
        f.bucket
            .put(
                "incoming/barcodes.csv",
                include_str!("../../../data/barcodes.csv"),
            )
            .await;
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        // Point the fixture's bucket ("orders") at this test's bucket.
        let event: Value = serde_json::from_str(
            &text
                .replace("\"orders\"", &format!("\"{}\"", f.bucket.name))
                .replace("\\\"orders\\\"", &format!("\\\"{}\\\"", f.bucket.name)),
        )
        .unwrap();
        let answer = ingest::handle_event(&f.ingestor, event).await.unwrap();
        if name.starts_with("sqs") {
            assert_eq!(answer, json!({"batchItemFailures": []}), "{name}");
        }
        assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 8, "{name}");
        assert_eq!(
            f.scalar("SELECT count(*) FROM barcodes").await,
            15,
            "{name}"
        );
        let processed = f.bucket.get_text(PROCESSED_ORDERS_KEY).await.unwrap();
        assert_eq!(processed.lines().count(), 7, "{name}: {processed}");
    }
}
