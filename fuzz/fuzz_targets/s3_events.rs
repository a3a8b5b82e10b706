//! Event and message bodies → what to ingest (s3_events), as the ingest
//! function reads them: a message body as text (SQS), a direct event as
//! parsed JSON (S3, SNS, EventBridge). Asserted whatever the bytes: no
//! panic; only created `.csv` objects under `incoming/` are ingested, with
//! their ETag unquoted and no empty version id; an error's text stays short.
#![no_main]

use libfuzzer_sys::fuzz_target;
use order_pipeline::config::INCOMING_PREFIX;
use order_pipeline::s3_events::{
    notification_from_body, notification_from_value, Decision, Notification, UnrecognizedEvent,
};

/// What `s3_events` promises of an error's text: it names the shape, never
/// the whole body (the ingest function logs it and returns it to Lambda).
/// The longest it builds: eight quoted names of at most 40 characters and
/// the sentence around them.
const MAX_ERROR_CHARS: usize = 600;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    check(notification_from_body(&body), &body);
    if let Ok(value) = serde_json::from_slice(data) {
        check(notification_from_value(value), &body);
    }
});

fn check(result: Result<Notification, UnrecognizedEvent>, body: &str) {
    match result {
        Ok(notification) => {
            for decision in notification.into_decisions() {
                match decision {
                    Decision::Ingest(object) => {
                        assert!(
                            object.key.starts_with(INCOMING_PREFIX),
                            "ingests {:?}",
                            object.key
                        );
                        assert!(
                            object.key.to_ascii_lowercase().ends_with(".csv"),
                            "ingests {:?}",
                            object.key
                        );
                        assert!(object
                            .etag
                            .as_deref()
                            .is_none_or(|t| !t.starts_with('"') && !t.ends_with('"')));
                        assert!(object.version_id.as_deref().is_none_or(|v| !v.is_empty()));
                    }
                    Decision::Skip { reason, .. } => assert!(!reason.is_empty()),
                }
            }
        }
        Err(error) => {
            let text = error.to_string();
            assert!(
                text.chars().count() <= MAX_ERROR_CHARS,
                "an error of {} characters for a body of {} bytes: {text}",
                text.chars().count(),
                body.len()
            );
        }
    }
}
