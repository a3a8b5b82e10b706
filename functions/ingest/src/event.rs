//! The invocation at the function's boundary: decoded once into what it is,
//! and answered in the shape its source expects.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use order_pipeline::ingest::IngestReport;
use order_pipeline::s3_events::{self, Notification, UnrecognizedEvent};
use serde_json::Value;

/// What one invocation brings.
#[derive(Debug)]
pub enum IngestEvent {
    /// A batch from the SQS event source mapping: each message's body is a
    /// notification of its own (S3, SNS-wrapped, or EventBridge).
    Sqs(SqsEvent),
    /// An S3, SNS or EventBridge notification invoking the function
    /// directly, read by [`s3_events`]' lenient types: `aws_lambda_events`'
    /// S3 and SNS records require fields we do not use (`eventTime`,
    /// `userIdentity`, `requestParameters`, SNS signatures) that not every
    /// sender fills, and its EventBridge type would add `chrono` for the one
    /// detail we read.
    Direct(Notification),
}

impl IngestEvent {
    /// Tells the event's source by its records (`eventSource` `aws:sqs`),
    /// else reads it as a notification.
    pub fn decode(event: Value) -> Result<Self, UnrecognizedEvent> {
        let from_sqs = event
            .pointer("/Records/0/eventSource")
            .and_then(Value::as_str)
            == Some("aws:sqs");
        if from_sqs {
            return serde_json::from_value(event)
                .map(IngestEvent::Sqs)
                .map_err(|source| UnrecognizedEvent::Malformed {
                    shape: "an SQS event",
                    source,
                });
        }
        s3_events::notification_from_value(event).map(IngestEvent::Direct)
    }
}

/// The function's answer.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum IngestAnswer {
    /// To an SQS batch: the messages to retry (the event source mapping
    /// needs `ReportBatchItemFailures`).
    Batch(SqsBatchResponse),
    /// To a direct event: what each file came to.
    Direct(DirectAnswer),
}

/// What a direct event's files came to.
#[derive(Debug, Default, serde::Serialize)]
pub struct DirectAnswer {
    pub reports: Vec<IngestReport>,
    /// Keys of the objects skipped (and `s3:TestEvent`).
    pub skipped: Vec<String>,
}
