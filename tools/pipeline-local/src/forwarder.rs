//! Does locally what Lambda's SQS event source mapping does in AWS: receive a
//! batch, invoke the function with it, and delete only the messages that
//! succeeded. Failed ones become visible again after the visibility timeout,
//! and after the queue's maximum receives SQS moves them to the dead-letter
//! queue. A function's answer is read as the event source mapping reads a
//! partial batch response (`ReportBatchItemFailures`): anything malformed
//! fails the whole batch.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_lambda_events::sqs::{BatchItemFailure, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::Value;

/// Invokes the function with an event. `Err` means the whole invocation failed.
#[allow(async_fn_in_trait)]
pub trait Invoke {
    async fn invoke(&self, event: Value) -> Result<Value>;
}

/// The ingest function's handler in this process: the code the function
/// runs, without the Lambda runtime around it (tests, and machines without
/// cargo-lambda).
pub struct InProcess<S: order_pipeline::storage::ObjectStore> {
    pub ingestor: order_pipeline::ingest::Ingestor<S>,
}

impl<S: order_pipeline::storage::ObjectStore> Invoke for InProcess<S> {
    async fn invoke(&self, event: Value) -> Result<Value> {
        ingest::handle_event(&self.ingestor, event)
            .await
            .map_err(|e| anyhow::anyhow!(e))
    }
}

/// The Lambda Invoke API, as `cargo lambda watch` (or AWS) serves it.
pub struct LambdaInvokeApi {
    client: reqwest::Client,
    url: String,
}

impl LambdaInvokeApi {
    /// `base_url` like `http://127.0.0.1:9000`.
    pub fn new(base_url: &str, function: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15 * 60))
                .build()
                .expect("HTTP client"),
            url: format!(
                "{}/2015-03-31/functions/{function}/invocations",
                base_url.trim_end_matches('/')
            ),
        }
    }
}

impl Invoke for LambdaInvokeApi {
    async fn invoke(&self, event: Value) -> Result<Value> {
        let response = self
            .client
            .post(&self.url)
            .json(&event)
            .send()
            .await
            .with_context(|| format!("invoking {}", self.url))?;
        let status = response.status();
        // Real Lambda answers 200 with this header; `cargo lambda watch` answers 500.
        let function_error = response
            .headers()
            .get("x-amz-function-error")
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let body = response
            .text()
            .await
            .context("reading the function's answer")?;
        if !status.is_success() || function_error.is_some() {
            anyhow::bail!("function failed (HTTP {status}): {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("function answered non-JSON: {body}"))
    }
}

/// Messages per invocation: the event source mapping's `BatchSize`, which
/// infra/template.yaml takes from its `IngestBatchSize` parameter, whose
/// default this is (the drift test, tests/template_drift.rs, holds them
/// together).
pub const BATCH_SIZE: i32 = 1;

/// Where the forwarder reads from, and how many messages at once.
#[derive(Debug, Clone)]
pub struct Source {
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    /// At most this many messages per invocation, 1 to 10; [`BATCH_SIZE`]
    /// unless trying other batch sizes.
    pub batch_size: i32,
}

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollOutcome {
    pub received: usize,
    /// Messages the function handled (deleted, unless counted below).
    pub succeeded: usize,
    /// Messages the function failed, or all of them when its answer was not
    /// a valid partial batch response: they come back after the visibility
    /// timeout.
    pub failed: usize,
    /// Handled messages whose deletion failed: they come back too, and the
    /// function sees them again (and answers `already_ingested`).
    pub not_deleted: usize,
}

/// The event Lambda builds from a batch of SQS messages.
pub fn sqs_event(messages: &[Message], source: &Source) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = messages
        .iter()
        .map(|m| {
            let mut record = SqsMessage::default();
            record.message_id = m.message_id().map(str::to_owned);
            record.receipt_handle = m.receipt_handle().map(str::to_owned);
            record.body = m.body().map(str::to_owned);
            record.md5_of_body = m.md5_of_body().map(str::to_owned);
            record.attributes = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            record.event_source = Some("aws:sqs".to_owned());
            record.event_source_arn = Some(source.queue_arn.clone());
            record.aws_region = Some(source.region.clone());
            record
        })
        .collect();
    event
}

/// The messages an answer reports failed, read as the SQS event source
/// mapping reads a partial batch response: a `null` answer, an empty object,
/// or `batchItemFailures` null or empty mean all succeeded; an
/// `itemIdentifier` that is missing, empty, null, not a string or not a
/// message of `batch`, or a `batchItemFailures` that is not an array, or an
/// answer that is not an object, is an error: the whole batch failed.
pub fn failed_message_ids(answer: &Value, batch: &[&str]) -> Result<HashSet<String>> {
    let failures = match answer {
        Value::Null => return Ok(HashSet::new()),
        Value::Object(answer) => answer.get("batchItemFailures").unwrap_or(&Value::Null),
        other => anyhow::bail!("the answer is not a JSON object: {}", brief(other)),
    };
    let failures = match failures {
        Value::Null => return Ok(HashSet::new()),
        Value::Array(failures) => failures,
        other => anyhow::bail!("batchItemFailures is not an array: {}", brief(other)),
    };
    failures
        .iter()
        .enumerate()
        .map(|(i, failure)| {
            let failure_read = serde_json::from_value::<BatchItemFailure>(failure.clone());
            match failure_read {
                Ok(read) if batch.contains(&read.item_identifier.as_str()) => {
                    Ok(read.item_identifier)
                }
                _ => anyhow::bail!(
                    "batchItemFailures[{i}] does not name a message of the batch \
                     (an itemIdentifier that is one of its messageIds): {}",
                    brief(failure)
                ),
            }
        })
        .collect()
}

/// A value from the function's answer, cut short for a log line.
fn brief(value: &Value) -> String {
    const SHOWN: usize = 120;
    let text = value.to_string();
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// Receives one batch (waiting up to `wait` for messages), invokes, and
/// deletes what succeeded.
pub async fn poll_once<I: Invoke>(
    sqs: &aws_sdk_sqs::Client,
    source: &Source,
    invoker: &I,
    wait: Duration,
) -> Result<PollOutcome> {
    let received = sqs
        .receive_message()
        .queue_url(&source.queue_url)
        .max_number_of_messages(source.batch_size)
        .wait_time_seconds(wait.as_secs().min(20) as i32)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .map_err(crate::sdk_error)
        .context("receiving from the ingest queue")?;
    let messages = received.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(PollOutcome::default());
    }
    let batch: Vec<&str> = messages.iter().filter_map(|m| m.message_id()).collect();
    let event =
        serde_json::to_value(sqs_event(&messages, source)).context("encoding the SQS event")?;
    let answer = invoker.invoke(event).await;
    let failed_ids = match answer.and_then(|answer| failed_message_ids(&answer, &batch)) {
        Ok(ids) => ids,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "invocation failed; the whole batch will be retried");
            batch.iter().map(|id| (*id).to_owned()).collect()
        }
    };
    let succeeded: Vec<&Message> = messages
        .iter()
        .filter(|m| !m.message_id().is_some_and(|id| failed_ids.contains(id)))
        .collect();
    let not_deleted = delete(sqs, source, &succeeded).await?;
    let outcome = PollOutcome {
        received: messages.len(),
        succeeded: succeeded.len(),
        failed: messages.len() - succeeded.len(),
        not_deleted,
    };
    tracing::info!(
        received = outcome.received,
        succeeded = outcome.succeeded,
        failed = outcome.failed,
        not_deleted = outcome.not_deleted,
        "batch forwarded"
    );
    Ok(outcome)
}

/// Deletes `messages`; returns how many SQS did not delete (each logged).
async fn delete(
    sqs: &aws_sdk_sqs::Client,
    source: &Source,
    messages: &[&Message],
) -> Result<usize> {
    if messages.is_empty() {
        return Ok(0);
    }
    let entries = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .set_receipt_handle(m.receipt_handle().map(str::to_owned))
                .build()
                .context("delete entry")
        })
        .collect::<Result<Vec<_>>>()?;
    let deleted = sqs
        .delete_message_batch()
        .queue_url(&source.queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(crate::sdk_error)
        .context("deleting processed messages")?;
    for failure in deleted.failed() {
        let message_id = failure
            .id()
            .parse::<usize>()
            .ok()
            .and_then(|i| messages.get(i))
            .and_then(|m| m.message_id());
        tracing::warn!(
            message_id,
            code = failure.code(),
            reason = failure.message(),
            "message handled but not deleted; it will be delivered again"
        );
    }
    Ok(deleted.failed().len())
}

/// Polls until `shutdown` resolves. Errors (LocalStack restarting, the
/// function still building) are logged and retried after a pause.
pub async fn run<I: Invoke>(
    sqs: &aws_sdk_sqs::Client,
    source: &Source,
    invoker: &I,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            polled = poll_once(sqs, source, invoker, Duration::from_secs(2)) => {
                if let Err(error) = polled {
                    tracing::warn!(error = %format!("{error:#}"), "poll failed; retrying in 2 s");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }
}
