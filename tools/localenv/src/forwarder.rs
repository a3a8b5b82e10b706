//! Does locally what Lambda's SQS event source mapping does in AWS: receive a
//! batch, invoke the function with it, and delete only the messages that
//! succeeded. Failed ones become visible again after the visibility timeout,
//! and after the queue's maximum receives SQS moves them to the dead-letter
//! queue.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::{json, Value};

/// Invokes the function with an event. `Err` means the whole invocation failed.
#[allow(async_fn_in_trait)]
pub trait Invoke {
    async fn invoke(&self, event: Value) -> Result<Value>;
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

/// Where the forwarder reads from.
#[derive(Debug, Clone)]
pub struct Source {
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
}

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollOutcome {
    pub received: usize,
    pub succeeded: usize,
    pub failed: usize,
}

/// The event Lambda builds from a batch of SQS messages.
pub fn sqs_event(messages: &[Message], source: &Source) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": source.queue_arn,
                "awsRegion": source.region,
            })
        })
        .collect();
    json!({ "Records": records })
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
        .max_number_of_messages(10)
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
    let failed_ids: Vec<String> = match invoker.invoke(sqs_event(&messages, source)).await {
        Ok(answer) => answer
            .get("batchItemFailures")
            .and_then(Value::as_array)
            .map(|failures| {
                failures
                    .iter()
                    .filter_map(|f| f.get("itemIdentifier").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "invocation failed; the whole batch will be retried");
            messages
                .iter()
                .filter_map(|m| m.message_id().map(str::to_owned))
                .collect()
        }
    };
    let succeeded: Vec<&Message> = messages
        .iter()
        .filter(|m| {
            !m.message_id()
                .is_some_and(|id| failed_ids.iter().any(|f| f == id))
        })
        .collect();
    if !succeeded.is_empty() {
        let entries = succeeded
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
        sqs.delete_message_batch()
            .queue_url(&source.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(crate::sdk_error)
            .context("deleting processed messages")?;
    }
    let outcome = PollOutcome {
        received: messages.len(),
        succeeded: succeeded.len(),
        failed: messages.len() - succeeded.len(),
    };
    tracing::info!(
        received = outcome.received,
        succeeded = outcome.succeeded,
        failed = outcome.failed,
        "batch forwarded"
    );
    Ok(outcome)
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
