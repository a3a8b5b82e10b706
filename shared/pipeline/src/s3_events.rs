//! S3 event notifications in every shape S3 hands them to a Lambda function:
//! an S3 notification (directly, or as an SQS message's body), the same
//! wrapped in an SNS notification (S3 → SNS → SQS without raw delivery, or
//! S3 → SNS → Lambda), and an EventBridge event from `aws.s3` (S3 →
//! EventBridge → SQS or Lambda). Anything else is an [`UnrecognizedEvent`]
//! naming what it was, so that it is never acknowledged silently.
//!
//! Parsed with our own lenient types rather than `aws_lambda_events`' strict
//! ones: LocalStack and AWS differ in which fields they fill, and a missing
//! field we do not use must not fail an ingest.

use percent_encoding::percent_decode_str;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::config::INCOMING_PREFIX;
use crate::storage::ObjectRef;

/// What a notification asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `s3:TestEvent`, sent once when a notification is configured.
    TestEvent,
    /// One decision per object the notification names.
    Objects(Vec<Decision>),
}

impl Notification {
    /// The decisions it asks for: none for a test event.
    pub fn into_decisions(self) -> Vec<Decision> {
        match self {
            Notification::TestEvent => Vec::new(),
            Notification::Objects(decisions) => decisions,
        }
    }
}

/// What to do with one object a notification names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Ingest(ObjectRef),
    Skip { key: String, reason: &'static str },
}

/// An event or message body that is not a notification we understand. Its
/// text names the shape (top-level keys, sources), never the whole body, and
/// stays short whatever the input.
#[derive(Debug, thiserror::Error)]
pub enum UnrecognizedEvent {
    #[error("not JSON ({0}); expected an S3 notification")]
    NotJson(#[source] serde_json::Error),
    #[error(
        "{0}: not an S3 notification, an SNS notification of one, \
         or an EventBridge event from aws.s3"
    )]
    UnknownShape(String),
    #[error("{shape} is malformed ({})", brief_message(.source))]
    Malformed {
        shape: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("in an SNS notification: {0}")]
    InSns(#[source] Box<UnrecognizedEvent>),
}

/// Reads a message body (JSON text).
pub fn notification_from_body(body: &str) -> Result<Notification, UnrecognizedEvent> {
    let value = serde_json::from_str(body).map_err(UnrecognizedEvent::NotJson)?;
    notification_from_value(value)
}

/// Reads an already parsed event or message body.
pub fn notification_from_value(value: Value) -> Result<Notification, UnrecognizedEvent> {
    match Shape::of(&value) {
        Shape::TestEvent => Ok(Notification::TestEvent),
        Shape::S3 => s3_notification(value),
        Shape::EventBridge => eventbridge_event(value),
        Shape::SnsEnvelope => sns_message(&value["Message"]),
        Shape::SnsEvent => sns_event(value),
        Shape::Unknown => Err(UnrecognizedEvent::UnknownShape(describe(&value))),
    }
}

/// The shapes we tell apart, by the fields that name them.
enum Shape {
    TestEvent,
    S3,
    EventBridge,
    /// An SNS notification as SNS delivers it to SQS: the S3 notification is
    /// a JSON string in `Message`.
    SnsEnvelope,
    /// An SNS event as SNS invokes Lambda: `Records[].Sns` are envelopes.
    SnsEvent,
    Unknown,
}

impl Shape {
    fn of(value: &Value) -> Self {
        let records = value
            .get("Records")
            .and_then(Value::as_array)
            .filter(|records| !records.is_empty());
        let every_record_has = |field: &str| {
            records.is_some_and(|records| records.iter().all(|r| r.get(field).is_some()))
        };
        if value.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
            Shape::TestEvent
        } else if every_record_has("s3") {
            Shape::S3
        } else if every_record_has("Sns") {
            Shape::SnsEvent
        } else if value.get("Type").and_then(Value::as_str) == Some("Notification")
            && value.get("Message").is_some_and(Value::is_string)
        {
            Shape::SnsEnvelope
        } else if value.get("source").and_then(Value::as_str) == Some("aws.s3")
            && value.get("detail-type").is_some_and(Value::is_string)
        {
            Shape::EventBridge
        } else {
            Shape::Unknown
        }
    }
}

/// At most this many top-level keys, each at most this long, name an
/// unrecognized body in errors and logs.
const KEYS_SHOWN: usize = 8;
const NAME_CHARS: usize = 40;

/// A short description of an unrecognized value: its JSON type and, for an
/// object, its keys (or the sources its records name).
fn describe(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "an empty JSON object".to_owned(),
        Value::Object(map) => match map.get("Records").and_then(Value::as_array) {
            Some(records) => {
                let sources: Vec<String> = records
                    .iter()
                    .take(KEYS_SHOWN)
                    .map(|r| {
                        r.get("eventSource")
                            .or_else(|| r.get("EventSource"))
                            .and_then(Value::as_str)
                            .map_or_else(|| "an unnamed source".to_owned(), shorten)
                    })
                    .collect();
                format!(
                    "an event of {} record(s) from {}",
                    records.len(),
                    if sources.is_empty() {
                        "nowhere".to_owned()
                    } else {
                        sources.join(", ")
                    }
                )
            }
            None => {
                let keys: Vec<String> = map.keys().take(KEYS_SHOWN).map(|k| shorten(k)).collect();
                let more = map.len().saturating_sub(KEYS_SHOWN);
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!("a JSON object with keys {}{more}", keys.join(", "))
            }
        },
        Value::Array(items) => format!("a JSON array of {} item(s)", items.len()),
        Value::String(_) => "a JSON string".to_owned(),
        Value::Number(_) => "a JSON number".to_owned(),
        Value::Bool(_) => "a JSON boolean".to_owned(),
        Value::Null => "JSON null".to_owned(),
    }
}

/// A name from the input, quoted with its characters escaped as Rust's
/// `{:?}` does, cut to [`NAME_CHARS`] characters of that: a name of
/// characters that all need escaping stays as short as any other.
fn shorten(name: &str) -> String {
    let mut short = String::from("\"");
    let mut utf8 = [0; 4];
    for c in name.chars() {
        let quoted = format!("{:?}", &*c.encode_utf8(&mut utf8));
        let escaped = &quoted[1..quoted.len() - 1];
        if short.chars().count() - 1 + escaped.chars().count() > NAME_CHARS {
            short.push('…');
            break;
        }
        short.push_str(escaped);
    }
    short.push('"');
    short
}

/// At most this many characters of a parser's message name what is
/// malformed, from its start (what was found, which may quote a value from
/// the body) and its end (what was expected).
const MESSAGE_HEAD_CHARS: usize = 120;
const MESSAGE_TAIL_CHARS: usize = 80;

fn brief_message(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let chars = message.chars().count();
    if chars <= MESSAGE_HEAD_CHARS + MESSAGE_TAIL_CHARS {
        return message;
    }
    let head: String = message.chars().take(MESSAGE_HEAD_CHARS).collect();
    let tail: String = message.chars().skip(chars - MESSAGE_TAIL_CHARS).collect();
    format!("{head}…{tail}")
}

#[derive(Debug, Deserialize)]
struct S3Notification {
    #[serde(rename = "Records")]
    records: Vec<S3Record>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Record {
    event_name: Option<String>,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    bucket: Bucket,
    object: S3Object,
}

#[derive(Debug, Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Object {
    key: String,
    size: Option<i64>,
    e_tag: Option<String>,
    version_id: Option<String>,
}

fn s3_notification(value: Value) -> Result<Notification, UnrecognizedEvent> {
    let notification: S3Notification = parse(value, "an S3 notification")?;
    let decisions = notification
        .records
        .into_iter()
        .map(|record| {
            let created = record.event_name.as_deref().is_none_or(|name| {
                name.starts_with("ObjectCreated") || name.starts_with("s3:ObjectCreated")
            });
            let object = record.s3.object;
            decide(
                created,
                ObjectRef {
                    bucket: record.s3.bucket.name,
                    key: decode_key(&object.key),
                    etag: object.e_tag,
                    version_id: object.version_id,
                    size: object.size,
                },
            )
        })
        .collect();
    Ok(Notification::Objects(decisions))
}

#[derive(Debug, Deserialize)]
struct EventBridgeEvent {
    #[serde(rename = "detail-type")]
    detail_type: String,
    detail: EventBridgeDetail,
}

#[derive(Debug, Deserialize)]
struct EventBridgeDetail {
    bucket: Bucket,
    object: EventBridgeObject,
}

#[derive(Debug, Deserialize)]
struct EventBridgeObject {
    key: String,
    size: Option<i64>,
    etag: Option<String>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
}

/// EventBridge names the key as S3 stores it: unlike an S3 notification's,
/// it is not form-encoded, so a `+` in it is a plus.
fn eventbridge_event(value: Value) -> Result<Notification, UnrecognizedEvent> {
    let event: EventBridgeEvent = parse(value, "an EventBridge event from aws.s3")?;
    let object = event.detail.object;
    Ok(Notification::Objects(vec![decide(
        event.detail_type == "Object Created",
        ObjectRef {
            bucket: event.detail.bucket.name,
            key: object.key,
            etag: object.etag,
            version_id: object.version_id,
            size: object.size,
        },
    )]))
}

/// The notification inside an SNS envelope's `Message`: an S3 notification
/// or S3's test event (SNS never wraps EventBridge events or itself).
fn sns_message(message: &Value) -> Result<Notification, UnrecognizedEvent> {
    let inner = || -> Result<Notification, UnrecognizedEvent> {
        let value: Value = serde_json::from_str(message.as_str().unwrap_or_default())
            .map_err(UnrecognizedEvent::NotJson)?;
        match Shape::of(&value) {
            Shape::TestEvent => Ok(Notification::TestEvent),
            Shape::S3 => s3_notification(value),
            _ => Err(UnrecognizedEvent::UnknownShape(describe(&value))),
        }
    };
    inner().map_err(|e| UnrecognizedEvent::InSns(Box::new(e)))
}

/// An SNS event invoking Lambda directly: one envelope per record.
fn sns_event(value: Value) -> Result<Notification, UnrecognizedEvent> {
    let mut notifications = value["Records"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|record| sns_message(&record["Sns"]["Message"]))
        .collect::<Result<Vec<_>, _>>()?;
    if notifications.len() == 1 {
        return Ok(notifications.remove(0));
    }
    let decisions = notifications
        .into_iter()
        .flat_map(Notification::into_decisions)
        .collect();
    Ok(Notification::Objects(decisions))
}

/// Reads a value of a recognized shape into its type.
fn parse<T: DeserializeOwned>(value: Value, shape: &'static str) -> Result<T, UnrecognizedEvent> {
    serde_json::from_value(value).map_err(|source| UnrecognizedEvent::Malformed { shape, source })
}

/// Ingest a created `.csv` object under `incoming/`; skip anything else. The
/// ETag loses its quotes and an empty version id means none, whatever shape
/// named them.
fn decide(created: bool, object: ObjectRef) -> Decision {
    let reason = if !created {
        "not an object-created event"
    } else if !object.key.starts_with(INCOMING_PREFIX) {
        "outside the incoming/ prefix"
    } else if !object.key.to_ascii_lowercase().ends_with(".csv") {
        "not a .csv file"
    } else {
        return Decision::Ingest(ObjectRef {
            etag: object.etag.map(|t| t.trim_matches('"').to_owned()),
            version_id: object.version_id.filter(|v| !v.is_empty()),
            ..object
        });
    };
    Decision::Skip {
        key: object.key,
        reason,
    }
}

/// Decodes a key as S3 notifications encode it: form-encoded, so `+` is a
/// space (AWS), and `%20` is too (LocalStack).
pub fn decode_key(raw: &str) -> String {
    let plus_as_space = raw.replace('+', " ");
    percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
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
            "../../../fuzz/regressions/s3_events/malformed-error-quotes-a-long-string"
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
}
