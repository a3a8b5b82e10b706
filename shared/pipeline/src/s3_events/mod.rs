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
use describe::{brief_message, describe};

mod describe;

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
mod tests;
