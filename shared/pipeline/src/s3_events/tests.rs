//! What each shape of event and body decodes to, and how the unrecognized
//! ones are named.

use super::*;
use serde_json::json;

fn notification(key: &str, event_name: &str) -> Value {
    json!({"Records": [{
        "eventSource": "aws:s3",
        "eventName": event_name,
        "s3": {"bucket": {"name": "orders"},
               "object": {"key": key, "size": 12, "eTag": "\"abc\"", "versionId": "v1"}}
    }]})
}

fn eventbridge(key: &str, detail_type: &str) -> Value {
    json!({
        "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type, "source": "aws.s3",
        "account": "111122223333", "time": "2026-11-21T12:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:s3:::orders"],
        "detail": {"version": "0", "bucket": {"name": "orders"},
                   "object": {"key": key, "size": 12, "etag": "abc",
                              "version-id": "v1", "sequencer": "00617F08299329D189"},
                   "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012",
                   "reason": "PutObject"}
    })
}

fn sns_envelope(message: &Value) -> Value {
    json!({"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
           "TopicArn": "arn:aws:sns:us-east-1:123456789012:orders",
           "Subject": "Amazon S3 Notification", "Message": message.to_string(),
           "Timestamp": "2026-11-21T12:00:00.000Z", "SignatureVersion": "1"})
}

fn objects(value: Value) -> Vec<Decision> {
    match notification_from_value(value).unwrap() {
        Notification::Objects(decisions) => decisions,
        Notification::TestEvent => panic!("a test event"),
    }
}

fn the_object(key: &str) -> Decision {
    Decision::Ingest(ObjectRef {
        bucket: "orders".into(),
        key: key.into(),
        etag: Some("abc".into()),
        version_id: Some("v1".into()),
        size: Some(12),
    })
}

#[test]
fn decodes_plus_and_percent_spaces() {
    assert_eq!(
        decode_key("incoming/my+file%20x.csv"),
        "incoming/my file x.csv"
    );
    assert_eq!(decode_key("incoming/a%2Bb.csv"), "incoming/a+b.csv");
}

#[test]
fn ingests_only_created_csv_under_incoming() {
    let ingest = objects(notification("incoming/orders.csv", "ObjectCreated:Put"));
    assert_eq!(ingest, [the_object("incoming/orders.csv")]);
    for (key, event) in [
        ("processed/processed_orders.csv", "ObjectCreated:Put"),
        ("incoming/readme.txt", "ObjectCreated:Put"),
        ("incoming/orders.csv", "ObjectRemoved:Delete"),
    ] {
        let got = objects(notification(key, event));
        assert!(
            matches!(&got[..], [Decision::Skip { .. }]),
            "{key} {event}: {got:?}"
        );
    }
}

#[test]
fn test_event_is_told_apart_directly_and_through_sns() {
    let test_event = json!({"Service": "Amazon S3", "Event": "s3:TestEvent",
                            "Time": "2026-01-01T00:00:00Z", "Bucket": "orders"});
    assert_eq!(
        notification_from_body(&test_event.to_string()).unwrap(),
        Notification::TestEvent
    );
    assert_eq!(
        notification_from_value(sns_envelope(&test_event)).unwrap(),
        Notification::TestEvent
    );
}

#[test]
fn sns_wrapped_notifications_name_the_same_object() {
    let inner = notification("incoming/my+orders.csv", "ObjectCreated:Put");
    let expected = [the_object("incoming/my orders.csv")];
    // SNS → SQS: the envelope is the message body.
    assert_eq!(objects(sns_envelope(&inner)), expected);
    // SNS → Lambda: the envelope is a record's `Sns`.
    let event = json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0",
                                    "Sns": sns_envelope(&inner)}]});
    assert_eq!(objects(event), expected);
}

#[test]
fn eventbridge_object_created_names_the_object_with_its_key_verbatim() {
    // EventBridge keys are not form-encoded: `+` stays a plus, `%20` stays.
    assert_eq!(
        objects(eventbridge("incoming/a+b%20c.csv", "Object Created")),
        [the_object("incoming/a+b%20c.csv")]
    );
    let deleted = objects(eventbridge("incoming/orders.csv", "Object Deleted"));
    assert!(
        matches!(&deleted[..], [Decision::Skip { .. }]),
        "{deleted:?}"
    );
}

#[test]
fn anything_else_is_unrecognized_and_named_briefly() {
    let long_key = "k".repeat(10_000);
    let cases = [
        (json!({}), "an empty JSON object"),
        (
            json!({"hello": 1, "world": 2}),
            "a JSON object with keys \"hello\", \"world\"",
        ),
        (
            json!({ long_key: 1 }),
            "\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk…\"",
        ),
        (json!("incoming/orders.csv"), "a JSON string"),
        (
            json!({"Records": []}),
            "an event of 0 record(s) from nowhere",
        ),
        (
            json!({"Records": [{"eventSource": "aws:dynamodb"}]}),
            "an event of 1 record(s) from \"aws:dynamodb\"",
        ),
        (
            json!({"source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification", "detail": {}}),
            "a JSON object with keys",
        ),
        (
            sns_envelope(&json!({"default": "hello"})),
            "in an SNS notification: a JSON object with keys \"default\"",
        ),
        (
            sns_envelope(&eventbridge("incoming/orders.csv", "Object Created")),
            "in an SNS notification: a JSON object with keys",
        ),
        (
            json!({"Records": [{"s3": {"bucket": {}}}]}),
            "an S3 notification is malformed",
        ),
    ];
    for (value, expected) in cases {
        let shown = value.to_string();
        let error = notification_from_value(value).unwrap_err().to_string();
        assert!(error.contains(expected), "{shown}: {error}");
        assert!(error.len() < 400, "{shown}: {error}");
    }
    let error = notification_from_body("not json").unwrap_err().to_string();
    assert!(error.starts_with("not JSON"), "{error}");
}

#[test]
fn a_malformed_notification_is_named_briefly_whatever_its_values() {
    let long = "9".repeat(10_000);
    let cases = [
        json!({"Records": [{"s3": {"bucket": {"name": "orders"},
                                   "object": {"key": "incoming/o.csv", "size": long}}}]}),
        json!({"source": "aws.s3", "detail-type": "Object Created",
               "detail": {"bucket": {"name": "orders"},
                          "object": {"key": "incoming/o.csv", "size": long}}}),
    ];
    for value in cases {
        let error = notification_from_value(value).unwrap_err().to_string();
        assert!(
            error.contains("is malformed (invalid type: string \"999"),
            "{error:.200}"
        );
        assert_at_most_chars(&error, 400);
        assert!(error.ends_with("9999\", expected i64)"), "{error:.500}");
    }
    // The input fuzz/regressions/s3_events/malformed-error-quotes-a-long-string,
    // found by the s3_events fuzz target (its bytes are not all UTF-8).
    let found = include_bytes!(
        "../../../../fuzz/regressions/s3_events/malformed-error-quotes-a-long-string"
    );
    let error = notification_from_body(&String::from_utf8_lossy(found))
        .unwrap_err()
        .to_string();
    assert_at_most_chars(&error, 400);
}

#[test]
fn unrecognized_keys_are_named_briefly_even_when_every_character_is_escaped() {
    let keys: serde_json::Map<String, Value> = (0..20)
        .map(|i| (format!("{i}{}", "\u{e0001}".repeat(100)), json!(i)))
        .collect();
    let error = notification_from_value(Value::Object(keys))
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("a JSON object with keys \"0\\u{e0001}"),
        "{error:.200}"
    );
    // Eight names of at most 40 characters, and the sentence around them.
    assert_at_most_chars(&error, 600);
}

fn assert_at_most_chars(text: &str, max: usize) {
    let chars = text.chars().count();
    assert!(
        chars <= max,
        "{chars} characters (at most {max}): {text:.600}"
    );
}
