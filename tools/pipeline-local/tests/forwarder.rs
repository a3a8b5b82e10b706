//! The local forwarder against real LocalStack SQS, with a function that
//! answers what each test needs: it deletes what the SQS event source mapping
//! deletes, and nothing when the answer is not a valid partial batch response.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use aws_lambda_events::sqs::SqsBatchResponse;
use aws_sdk_sqs::config::interceptors::BeforeSerializationInterceptorContextMut;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sqs::error::BoxError;
use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchInput;
use aws_sdk_sqs::types::QueueAttributeName;
use pipeline_local::forwarder::{self, Invoke, PollOutcome, Source};
use pipeline_test_support::{block_on_cleanup, localstack_config};
use serde_json::{json, Value};

/// A queue of this test's own, deleted at the end. Its visibility timeout is
/// 0, so what the forwarder leaves undeleted is visible again at once.
struct TestQueue {
    sqs: aws_sdk_sqs::Client,
    source: Source,
}

impl TestQueue {
    async fn create(batch_size: i32) -> Self {
        Self::create_with(
            aws_sdk_sqs::Client::new(&localstack_config().await),
            batch_size,
        )
        .await
    }

    async fn create_with(sqs: aws_sdk_sqs::Client, batch_size: i32) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("forwarder-test-{}-{nanos}", std::process::id());
        let queue_url = sqs
            .create_queue()
            .queue_name(&name)
            .attributes(QueueAttributeName::VisibilityTimeout, "0")
            .send()
            .await
            .expect("create the test queue")
            .queue_url
            .unwrap();
        let source = Source {
            queue_url,
            queue_arn: format!("arn:aws:sqs:us-east-1:000000000000:{name}"),
            region: "us-east-1".into(),
            batch_size,
        };
        Self { sqs, source }
    }

    async fn send(&self, bodies: &[&str]) {
        for body in bodies {
            self.sqs
                .send_message()
                .queue_url(&self.source.queue_url)
                .message_body(*body)
                .send()
                .await
                .unwrap();
        }
    }

    async fn poll<I: Invoke>(&self, invoker: &I) -> PollOutcome {
        forwarder::poll_once(&self.sqs, &self.source, invoker, Duration::from_secs(1))
            .await
            .unwrap()
    }

    /// The bodies still queued, sorted.
    async fn remaining(&self) -> Vec<String> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.source.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let mut bodies: Vec<String> = received
            .messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_owned))
            .collect();
        bodies.sort();
        bodies
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        let url = self.source.queue_url.clone();
        block_on_cleanup(async move {
            let sqs = aws_sdk_sqs::Client::new(&localstack_config().await);
            let _ = sqs.delete_queue().queue_url(url).send().await;
        });
    }
}

/// The `(messageId, body)` of each message of a batch.
type Batch = [(String, String)];

/// How a test function answers a batch.
type Answer = fn(&Batch) -> Value;

/// A function whose answer is made from the batch it is given.
struct Answering<F>(F);

impl<F: Fn(&Batch) -> Value> Invoke for Answering<F> {
    async fn invoke(&self, event: Value) -> Result<Value> {
        let batch: Vec<(String, String)> = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["messageId"].as_str().unwrap().to_owned(),
                    r["body"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        Ok((self.0)(&batch))
    }
}

/// The message id of the message with `body`.
fn id_of<'a>(batch: &'a Batch, body: &str) -> &'a str {
    &batch.iter().find(|(_, b)| b == body).unwrap().0
}

const BODIES: [&str; 3] = ["a", "b", "c"];

#[tokio::test]
async fn only_the_messages_a_valid_answer_names_stay_queued() {
    let queue = TestQueue::create(10).await;
    queue.send(&BODIES).await;
    let fail_b = Answering(|batch: &Batch| {
        let mut answer = SqsBatchResponse::default();
        answer.add_failure(id_of(batch, "b"));
        serde_json::to_value(answer).unwrap()
    });
    let outcome = queue.poll(&fail_b).await;
    assert_eq!(
        outcome,
        PollOutcome {
            received: 3,
            succeeded: 2,
            failed: 1,
            not_deleted: 0
        }
    );
    assert_eq!(queue.remaining().await, ["b"]);
}

#[tokio::test]
async fn every_way_of_saying_all_succeeded_deletes_the_whole_batch() {
    for answer in [
        json!(null),
        json!({}),
        json!({"batchItemFailures": null}),
        json!({"batchItemFailures": []}),
    ] {
        let queue = TestQueue::create(10).await;
        queue.send(&BODIES).await;
        let outcome = queue.poll(&Answering(|_: &Batch| answer.clone())).await;
        assert_eq!(
            (outcome.received, outcome.succeeded, outcome.failed),
            (3, 3, 0),
            "{answer}"
        );
        assert!(queue.remaining().await.is_empty(), "{answer}");
    }
}

#[tokio::test]
async fn an_answer_that_is_not_a_valid_partial_batch_response_fails_the_whole_batch() {
    let queue = TestQueue::create(10).await;
    queue.send(&BODIES).await;
    let malformed: [(&str, Answer); 11] = [
        (
            "an empty itemIdentifier",
            |_| json!({"batchItemFailures": [{"itemIdentifier": ""}]}),
        ),
        (
            "a null itemIdentifier",
            |_| json!({"batchItemFailures": [{"itemIdentifier": null}]}),
        ),
        (
            "an unknown itemIdentifier",
            |_| json!({"batchItemFailures": [{"itemIdentifier": "not-a-message-of-this-batch"}]}),
        ),
        ("an unknown one beside a valid one", |batch| {
            json!({"batchItemFailures": [{"itemIdentifier": id_of(batch, "a")},
                                         {"itemIdentifier": "not-a-message-of-this-batch"}]})
        }),
        (
            "a misspelt key",
            |batch| json!({"batchItemFailures": [{"itemidentifier": id_of(batch, "a")}]}),
        ),
        (
            "a number for an id",
            |_| json!({"batchItemFailures": [{"itemIdentifier": 1}]}),
        ),
        (
            "a bare id for an entry",
            |batch| json!({"batchItemFailures": [id_of(batch, "a")]}),
        ),
        (
            "batchItemFailures a string",
            |batch| json!({"batchItemFailures": id_of(batch, "a")}),
        ),
        (
            "batchItemFailures an object",
            |batch| json!({"batchItemFailures": {"itemIdentifier": id_of(batch, "a")}}),
        ),
        ("a string for an answer", |_| json!("ok")),
        ("an array for an answer", |_| json!([])),
    ];
    for (what, answer) in malformed {
        let outcome = queue.poll(&Answering(answer)).await;
        assert_eq!(
            outcome,
            PollOutcome {
                received: 3,
                succeeded: 0,
                failed: 3,
                not_deleted: 0
            },
            "{what}"
        );
        assert_eq!(queue.remaining().await, BODIES, "{what}: nothing deleted");
    }
}

/// Replaces the receipt handle of the first entry of every DeleteMessageBatch
/// with one SQS refuses, so that SQS itself fails that entry alone.
#[derive(Debug)]
struct SpoilFirstDeletion;

impl Intercept for SpoilFirstDeletion {
    fn name(&self) -> &'static str {
        "SpoilFirstDeletion"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(input) = context
            .input_mut()
            .downcast_mut::<DeleteMessageBatchInput>()
        {
            if let Some(first) = input.entries.as_mut().and_then(|e| e.first_mut()) {
                first.receipt_handle = "not-a-receipt-handle".into();
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_message_sqs_fails_to_delete_is_counted_and_stays_queued() {
    let config = localstack_config().await;
    let spoiling = aws_sdk_sqs::config::Builder::from(&config)
        .interceptor(SpoilFirstDeletion)
        .build();
    let queue = TestQueue::create_with(aws_sdk_sqs::Client::from_conf(spoiling), 10).await;
    queue.send(&BODIES).await;
    let outcome = queue.poll(&Answering(|_: &Batch| json!({}))).await;
    assert_eq!(
        outcome,
        PollOutcome {
            received: 3,
            succeeded: 3,
            failed: 0,
            not_deleted: 1
        }
    );
    assert_eq!(
        queue.remaining().await.len(),
        1,
        "the undeleted one comes back"
    );
}

#[tokio::test]
async fn a_poll_takes_at_most_the_batch_size() {
    let queue = TestQueue::create(forwarder::BATCH_SIZE).await;
    queue.send(&BODIES).await;
    let outcome = queue.poll(&Answering(|_: &Batch| json!({}))).await;
    assert_eq!(outcome.received, forwarder::BATCH_SIZE as usize);
}
