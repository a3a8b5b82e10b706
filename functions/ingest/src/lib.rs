//! The ingest function's event handling: which objects an event names, and
//! which SQS messages failed (so that only those are retried).

use order_pipeline::csv_records::CsvLimits;
use order_pipeline::ingest::{IngestError, IngestReport, Ingestor};
use order_pipeline::postgres::{self, PgStore};
use order_pipeline::s3_events::{self, Decision, Notification};
use order_pipeline::storage::{s3_client, ObjectStore, S3Store};
use serde_json::{json, Value};

pub mod budget;

use budget::TimeBudget;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Builds the ingestor from the environment (`DATABASE_URL`, or in AWS
/// `DATABASE_SECRET_ARN`; the usual AWS variables; `AWS_ENDPOINT_URL` for
/// LocalStack; the `CSV_MAX_*` input limits, see [`CsvLimits`]).
pub async fn ingestor_from_env() -> Result<Ingestor<S3Store>, Error> {
    let settings = order_pipeline::postgres::secret::database_settings().await?;
    let pool = postgres::pool::connect_pool(&settings)?;
    let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok(
        Ingestor::new(S3Store::new(s3_client(&sdk_config)), PgStore::new(pool))
            .with_csv_limits(CsvLimits::from_env()?),
    )
}

/// Handles one invocation with no deadline (local tools and tests): every
/// file starts. See [`handle_invocation`].
pub async fn handle_event<S: ObjectStore>(
    ingestor: &Ingestor<S>,
    event: Value,
) -> Result<Value, Error> {
    handle_invocation(ingestor, event, &mut TimeBudget::unlimited()).await
}

/// Handles one invocation. An SQS batch answers with `batchItemFailures`
/// (the event source mapping needs `ReportBatchItemFailures`), so one bad
/// message never makes the good ones run again; messages not started
/// because `budget` ran short are among them. A direct event (S3, SNS or
/// EventBridge) fails as a whole, not started files included, and Lambda's
/// asynchronous retries take over (the files it loaded answer
/// `already_ingested` then).
pub async fn handle_invocation<S: ObjectStore>(
    ingestor: &Ingestor<S>,
    event: Value,
    budget: &mut TimeBudget<'_>,
) -> Result<Value, Error> {
    if is_sqs_event(&event) {
        return Ok(handle_sqs(ingestor, event, budget).await);
    }
    match s3_events::notification_from_value(event) {
        Ok(Notification::TestEvent) => {
            tracing::info!("s3:TestEvent skipped");
            Ok(json!({"reports": [], "skipped": ["s3:TestEvent"]}))
        }
        Ok(Notification::Objects(decisions)) => {
            let ran = run_decisions(ingestor, decisions, budget).await?;
            if !ran.not_started.is_empty() {
                return Err(format!(
                    "too little time left to start {}; the invocation fails so that Lambda \
                     retries the event",
                    ran.not_started.join(", ")
                )
                .into());
            }
            Ok(json!({"reports": ran.reports, "skipped": ran.skipped}))
        }
        Err(error) => {
            tracing::error!(%error, "event not understood; the invocation fails");
            Err(format!("not an SQS, S3, SNS or EventBridge event: {error}").into())
        }
    }
}

fn is_sqs_event(event: &Value) -> bool {
    event
        .pointer("/Records/0/eventSource")
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

/// Why a message goes back to the queue.
enum MessageFailure {
    NotStarted,
    Failed(Error),
}

async fn handle_sqs<S: ObjectStore>(
    ingestor: &Ingestor<S>,
    event: Value,
    budget: &mut TimeBudget<'_>,
) -> Value {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut failures = Vec::new();
    for record in records {
        let message_id = record
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let body = record
            .get("body")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match handle_message(ingestor, &message_id, body, budget).await {
            Ok(()) => continue,
            Err(MessageFailure::NotStarted) => {
                tracing::warn!(
                    message_id,
                    "message not started for lack of time; handed back to be retried"
                );
            }
            Err(MessageFailure::Failed(error)) => {
                tracing::error!(message_id, %error, "message failed; it will be retried, then dead-lettered");
            }
        }
        failures.push(json!({"itemIdentifier": message_id}));
    }
    json!({"batchItemFailures": failures})
}

async fn handle_message<S: ObjectStore>(
    ingestor: &Ingestor<S>,
    message_id: &str,
    body: &str,
    budget: &mut TimeBudget<'_>,
) -> Result<(), MessageFailure> {
    if budget.exhausted() {
        return Err(MessageFailure::NotStarted);
    }
    let notification = s3_events::notification_from_body(body).map_err(|error| {
        MessageFailure::Failed(format!("message body not understood: {error}").into())
    })?;
    match notification {
        Notification::TestEvent => {
            tracing::info!(message_id, "s3:TestEvent skipped");
            Ok(())
        }
        Notification::Objects(decisions) => {
            let ran = run_decisions(ingestor, decisions, budget)
                .await
                .map_err(MessageFailure::Failed)?;
            if ran.not_started.is_empty() {
                Ok(())
            } else {
                Err(MessageFailure::NotStarted)
            }
        }
    }
}

/// What the decisions of one notification came to.
struct Ran {
    reports: Vec<IngestReport>,
    skipped: Vec<String>,
    /// Keys of the files the budget did not let start.
    not_started: Vec<String>,
}

async fn run_decisions<S: ObjectStore>(
    ingestor: &Ingestor<S>,
    decisions: Vec<Decision>,
    budget: &mut TimeBudget<'_>,
) -> Result<Ran, Error> {
    let mut ran = Ran {
        reports: Vec::new(),
        skipped: Vec::new(),
        not_started: Vec::new(),
    };
    for decision in decisions {
        match decision {
            Decision::Ingest(object) if !budget.may_start() => ran.not_started.push(object.key),
            Decision::Ingest(object) => {
                let report = ingestor.ingest(&object).await.map_err(|e: IngestError| {
                    Error::from(format!("s3://{}/{}: {e}", object.bucket, object.key))
                })?;
                ran.reports.push(report);
            }
            Decision::Skip { key, reason } => {
                tracing::info!(%key, reason, "object skipped");
                ran.skipped.push(key);
            }
        }
    }
    Ok(ran)
}
