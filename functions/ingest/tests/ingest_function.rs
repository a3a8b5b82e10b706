//! The ingest function's handler against real LocalStack S3 and a fresh
//! PostgreSQL database per test.

use order_pipeline::config::PROCESSED_ORDERS_KEY;
use pipeline_test_support::{sqs_event, sqs_event_of, LogCapture, TestPipeline};
use serde_json::{json, Value};

const ORDERS: &str = "order_id,customer_id\n1,10\n2,11\n3,10\n4,12\n";
const BARCODES: &str = "barcode,order_id\n0001,1\n0002,1\n0003,2\n0001,3\n0004,\n0005,2\n";

async fn fixture() -> TestPipeline {
    TestPipeline::create().await
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
        sqs_event_of(&[
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
        sqs_event_of(&[
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
    // (fixture, orders loaded, barcodes loaded)
    let fixtures = [
        ("s3-put.json", 8, 15),
        ("sqs-s3-put.json", 8, 15),
        ("sqs-sns-s3-put.json", 8, 15),
        ("sqs-eventbridge-s3-put.json", 8, 15),
        ("sns-s3-put.json", 8, 15),
        ("eventbridge-s3-put.json", 8, 0),
    ];
    for (name, orders, barcodes) in fixtures {
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
        let mut text = std::fs::read_to_string(&path).unwrap();
        // Point the fixture's bucket ("orders") at this test's bucket, at
        // every depth of JSON-in-a-string it is quoted at (an SNS message in
        // an SQS body is two deep).
        let mut quote = String::from("\"");
        for _depth in 0..3 {
            text = text.replace(
                &format!("{quote}orders{quote}"),
                &format!("{quote}{}{quote}", f.bucket.name),
            );
            quote = quote.replace('\\', "\\\\").replace('"', "\\\"");
        }
        let event: Value = serde_json::from_str(&text).unwrap();
        let answer = ingest::handle_event(&f.ingestor, event).await.unwrap();
        if name.starts_with("sqs") {
            assert_eq!(answer, json!({"batchItemFailures": []}), "{name}");
        }
        assert_eq!(
            f.scalar("SELECT count(*) FROM orders").await,
            orders,
            "{name}"
        );
        assert_eq!(
            f.scalar("SELECT count(*) FROM barcodes").await,
            barcodes,
            "{name}"
        );
        if barcodes > 0 {
            let processed = f.bucket.get_text(PROCESSED_ORDERS_KEY).await.unwrap();
            assert_eq!(processed.lines().count(), 7, "{name}: {processed}");
        }
    }
}

/// `notification` as SNS delivers it: to SQS (without raw message delivery)
/// this envelope is the message body; to Lambda it is a record's `Sns`.
fn sns_envelope(notification: &Value) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:000000000000:orders-uploads",
        "Subject": "Amazon S3 Notification",
        "Message": notification.to_string(),
        "Timestamp": "2026-11-21T12:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "EXAMPLE",
        "UnsubscribeURL": "EXAMPLE"
    })
}

/// The EventBridge "Object Created" event S3 sends for `key`, with the
/// object's real ETag and version id. Its key is not form-encoded.
async fn eventbridge_event(f: &TestPipeline, key: &str) -> Value {
    let head = f
        .bucket
        .client
        .head_object()
        .bucket(&f.bucket.name)
        .key(key)
        .send()
        .await
        .unwrap();
    json!({
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "000000000000",
        "time": "2026-11-21T12:00:00Z",
        "region": "us-east-1",
        "resources": [format!("arn:aws:s3:::{}", f.bucket.name)],
        "detail": {
            "version": "0",
            "bucket": {"name": f.bucket.name},
            "object": {
                "key": key,
                "size": head.content_length(),
                "etag": head.e_tag().map(|t| t.trim_matches('"')),
                "version-id": head.version_id(),
                "sequencer": "00617F08299329D189"
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "000000000000",
            "source-ip-address": "127.0.0.1",
            "reason": "PutObject"
        }
    })
}

#[tokio::test]
async fn sns_wrapped_and_eventbridge_notifications_load_their_files() {
    let f = fixture().await;
    f.bucket.put("incoming/sns orders.csv", ORDERS).await;
    // A `+` in the key: EventBridge names it as is, so it must not be decoded.
    f.bucket.put("incoming/eb+barcodes.csv", BARCODES).await;
    let answer = ingest::handle_event(
        &f.ingestor,
        sqs_event_of(&[
            (
                "through-sns",
                sns_envelope(&f.bucket.put_event("incoming/sns orders.csv")),
            ),
            (
                "through-eventbridge",
                eventbridge_event(&f, "incoming/eb+barcodes.csv").await,
            ),
        ]),
    )
    .await
    .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 4);
    assert_eq!(f.scalar("SELECT count(*) FROM barcodes").await, 5);

    // The same wirings invoking the function directly.
    f.bucket
        .put("incoming/more orders.csv", "order_id,customer_id\n5,10\n")
        .await;
    f.bucket
        .put("incoming/more+barcodes.csv", "barcode,order_id\n0009,5\n")
        .await;
    let sns_event = json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:us-east-1:000000000000:orders-uploads:1",
        "Sns": sns_envelope(&f.bucket.put_event("incoming/more orders.csv"))
    }]});
    let direct = [
        sns_event,
        eventbridge_event(&f, "incoming/more+barcodes.csv").await,
    ];
    for event in direct {
        let answer = ingest::handle_event(&f.ingestor, event).await.unwrap();
        assert_eq!(answer["reports"][0]["status"], "loaded", "{answer}");
    }
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 5);
    assert_eq!(f.scalar("SELECT count(*) FROM barcodes").await, 6);
}

#[tokio::test]
async fn bodies_that_are_not_notifications_fail_and_the_log_says_what_they_were() {
    let f = fixture().await;
    let logs = LogCapture::default();
    let _guard = logs.install("info");
    let messages = [
        ("empty", "{}".to_owned(), "an empty JSON object"),
        (
            "unknown",
            json!({"hello": "world"}).to_string(),
            "a JSON object with keys \"hello\"",
        ),
        ("text", "hello".to_owned(), "not JSON"),
        (
            "sns-of-something-else",
            sns_envelope(&json!({"default": "hello"})).to_string(),
            "in an SNS notification: a JSON object with keys \"default\"",
        ),
        (
            "not-from-s3",
            json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification",
                   "detail": {}})
            .to_string(),
            "a JSON object with keys",
        ),
    ];
    let bodies: Vec<(&str, String)> = messages
        .iter()
        .map(|(id, body, _)| (*id, body.clone()))
        .collect();
    let answer = ingest::handle_event(&f.ingestor, sqs_event(&bodies))
        .await
        .unwrap();
    let failed: Vec<Value> = messages
        .iter()
        .map(|(id, _, _)| json!({"itemIdentifier": id}))
        .collect();
    assert_eq!(answer, json!({ "batchItemFailures": failed }));
    for (id, _, named) in messages {
        logs.assert_a_line_with(&[&format!("message_id=\"{id}\""), named]);
    }

    // Invoked directly, such an event fails the invocation, saying what it was.
    let error = ingest::handle_event(&f.ingestor, json!({}))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("an empty JSON object"),
        "{error}"
    );
    logs.assert_a_line_with(&["ERROR", "an empty JSON object"]);
}
