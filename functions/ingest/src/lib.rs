//! The ingest function's event handling: which objects an event names, and
//! which SQS messages failed (so that only those are retried).

use aws_lambda_events::sqs::{SqsBatchResponse, SqsMessage};
use order_pipeline::csv_records::CsvLimits;
use order_pipeline::error_chain::ErrorChain;
use order_pipeline::ingest::{IngestError, IngestReport, Ingestor};
use order_pipeline::postgres::{self, PgStore};
use order_pipeline::s3_events::{self, Decision, Notification};
use order_pipeline::storage::{s3_client, ObjectStore, S3Store};
use serde_json::Value;
use tracing::Instrument;

pub mod budget;
pub mod event;

use budget::TimeBudget;
use event::{DirectAnswer, IngestAnswer, IngestEvent};

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
/// file starts, and the answer is the JSON Lambda would send back. See
/// [`handle_invocation`].
pub async fn handle_event<S: ObjectStore>(
    ingestor: &Ingestor<S>,
    event: Value,
) -> Result<Value, Error> {
    let answer = handle_invocation(ingestor, event, &mut TimeBudget::unlimited()).await?;
    Ok(serde_json::to_value(answer)?)
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
) -> Result<IngestAnswer, Error> {
    match IngestEvent::decode(event) {
        Ok(IngestEvent::Sqs(batch)) => Ok(IngestAnswer::Batch(
            handle_sqs(ingestor, batch.records, budget).await,
        )),
        Ok(IngestEvent::Direct(Notification::TestEvent)) => {
            tracing::info!("s3:TestEvent skipped");
            Ok(IngestAnswer::Direct(DirectAnswer {
                reports: Vec::new(),
                skipped: vec!["s3:TestEvent".to_owned()],
            }))
        }
        Ok(IngestEvent::Direct(Notification::Objects(decisions))) => {
            let ran = run_decisions(ingestor, decisions, budget).await?;
            if !ran.not_started.is_empty() {
                return Err(format!(
                    "too little time left to start {}; the invocation fails so that Lambda \
                     retries the event",
                    ran.not_started.join(", ")
                )
                .into());
            }
            Ok(IngestAnswer::Direct(DirectAnswer {
                reports: ran.reports,
                skipped: ran.skipped,
            }))
        }
        Err(error) => {
            tracing::error!(%error, "event not understood; the invocation fails");
            Err(format!("not an SQS, S3, SNS or EventBridge event: {error}").into())
        }
    }
}

/// Why a message goes back to the queue.
enum MessageFailure {
    NotStarted,
    Failed(Error),
}

async fn handle_sqs<S: ObjectStore>(
    ingestor: &Ingestor<S>,
    messages: Vec<SqsMessage>,
    budget: &mut TimeBudget<'_>,
) -> SqsBatchResponse {
    let mut answer = SqsBatchResponse::default();
    for message in messages {
        let message_id = message.message_id.unwrap_or_default();
        let body = message.body.unwrap_or_default();
        // The message's span encloses the objects' spans: lines logged for
        // the message itself carry its id (a JSON line names its innermost
        // span only).
        let span = tracing::info_span!("sqs_message", message_id = %message_id);
        let handled = handle_message(ingestor, &message_id, &body, budget)
            .instrument(span)
            .await;
        match handled {
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
        answer.add_failure(message_id);
    }
    answer
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
                    let chain = ErrorChain(&e);
                    Error::from(format!("s3://{}/{}: {chain}", object.bucket, object.key))
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
