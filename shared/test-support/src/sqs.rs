//! SQS events as the event source mapping delivers them to a function.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};

/// An SQS event whose messages have these ids and bodies (JSON or not), as
/// the JSON Lambda invokes the function with.
pub fn sqs_event(messages: &[(&str, String)]) -> serde_json::Value {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|(id, body)| {
            let mut message = SqsMessage::default();
            message.message_id = Some((*id).to_owned());
            message.receipt_handle = Some(format!("handle-{id}"));
            message.body = Some(body.clone());
            message.md5_of_body = Some(String::new());
            message.attributes = [("ApproximateReceiveCount".to_owned(), "1".to_owned())].into();
            message.event_source = Some("aws:sqs".to_owned());
            message.event_source_arn = Some("arn:aws:sqs:us-east-1:000000000000:test".to_owned());
            message.aws_region = Some("us-east-1".to_owned());
            message
        })
        .collect();
    serde_json::to_value(event).expect("an SQS event is JSON")
}

/// An SQS event of these messages, their bodies JSON (S3 notifications,
/// SNS envelopes, EventBridge events).
pub fn sqs_event_of(messages: &[(&str, serde_json::Value)]) -> serde_json::Value {
    let bodies: Vec<(&str, String)> = messages
        .iter()
        .map(|(id, body)| (*id, body.to_string()))
        .collect();
    sqs_event(&bodies)
}
