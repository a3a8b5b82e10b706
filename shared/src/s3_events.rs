//! S3 event notifications, whether delivered directly or inside SQS messages.
//!
//! Parsed with our own lenient types rather than `aws_lambda_events`' strict
//! ones: LocalStack and AWS differ in which fields they fill, and a missing
//! field we do not use must not fail an ingest.

use percent_encoding::percent_decode_str;
use serde::Deserialize;

use crate::config::INCOMING_PREFIX;
use crate::storage::ObjectRef;

#[derive(Debug, Deserialize)]
struct Notification {
    #[serde(rename = "Records", default)]
    records: Vec<Record>,
    /// `s3:TestEvent` when S3 checks a freshly configured notification.
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_name: Option<String>,
    s3: Option<Entity>,
}

#[derive(Debug, Deserialize)]
struct Entity {
    bucket: Bucket,
    object: Object,
}

#[derive(Debug, Deserialize)]
struct Bucket {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object {
    key: String,
    size: Option<i64>,
    e_tag: Option<String>,
    version_id: Option<String>,
}

/// What to do with one record of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Ingest(ObjectRef),
    Skip { key: String, reason: &'static str },
}

/// Reads an S3 notification (a JSON document) into decisions, one per record.
/// A test event yields none.
pub fn decisions_from_json(json: &str) -> Result<Vec<Decision>, serde_json::Error> {
    let notification: Notification = serde_json::from_str(json)?;
    Ok(decisions(notification))
}

/// Same as [`decisions_from_json`] for an already parsed value.
pub fn decisions_from_value(value: serde_json::Value) -> Result<Vec<Decision>, serde_json::Error> {
    let notification: Notification = serde_json::from_value(value)?;
    Ok(decisions(notification))
}

/// True for S3's `s3:TestEvent`, sent once when a notification is configured.
pub fn is_test_event(value: &serde_json::Value) -> bool {
    value.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent")
}

fn decisions(notification: Notification) -> Vec<Decision> {
    if notification.event.as_deref() == Some("s3:TestEvent") {
        return Vec::new();
    }
    notification
        .records
        .into_iter()
        .filter_map(|record| {
            let entity = record.s3?;
            let key = decode_key(&entity.object.key);
            let created = record.event_name.as_deref().is_none_or(|name| {
                name.starts_with("ObjectCreated") || name.starts_with("s3:ObjectCreated")
            });
            Some(if !created {
                Decision::Skip {
                    key,
                    reason: "not an object-created event",
                }
            } else if !key.starts_with(INCOMING_PREFIX) {
                Decision::Skip {
                    key,
                    reason: "outside the incoming/ prefix",
                }
            } else if !key.to_ascii_lowercase().ends_with(".csv") {
                Decision::Skip {
                    key,
                    reason: "not a .csv file",
                }
            } else {
                Decision::Ingest(ObjectRef {
                    bucket: entity.bucket.name,
                    key,
                    etag: entity.object.e_tag.map(|t| t.trim_matches('"').to_owned()),
                    version_id: entity.object.version_id.filter(|v| !v.is_empty()),
                    size: entity.object.size,
                })
            })
        })
        .collect()
}

/// Decodes a key as S3 events encode it: form-encoded, so `+` is a space
/// (AWS), and `%20` is too (LocalStack).
pub fn decode_key(raw: &str) -> String {
    let plus_as_space = raw.replace('+', " ");
    percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(key: &str, event_name: &str) -> String {
        serde_json::json!({"Records": [{
            "eventSource": "aws:s3",
            "eventName": event_name,
            "s3": {"bucket": {"name": "orders"},
                   "object": {"key": key, "size": 12, "eTag": "\"abc\""}}
        }]})
        .to_string()
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
        let ingest =
            decisions_from_json(&notification("incoming/orders.csv", "ObjectCreated:Put")).unwrap();
        assert!(matches!(&ingest[..], [Decision::Ingest(o)] if o.etag.as_deref() == Some("abc")));
        for (key, event) in [
            ("processed/processed_orders.csv", "ObjectCreated:Put"),
            ("incoming/readme.txt", "ObjectCreated:Put"),
            ("incoming/orders.csv", "ObjectRemoved:Delete"),
        ] {
            let got = decisions_from_json(&notification(key, event)).unwrap();
            assert!(
                matches!(&got[..], [Decision::Skip { .. }]),
                "{key} {event}: {got:?}"
            );
        }
    }

    #[test]
    fn test_event_yields_nothing() {
        let json = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-01-01T00:00:00Z","Bucket":"orders"}"#;
        assert!(decisions_from_json(json).unwrap().is_empty());
        assert!(is_test_event(&serde_json::from_str(json).unwrap()));
    }
}
