//! The ingest function's event handling: which objects an event names, and
//! which SQS messages failed (so that only those are retried).

use order_pipeline::csv_records::CsvLimits;
use order_pipeline::db::{self, PgStore};
use order_pipeline::ingest::{IngestError, IngestReport, Ingestor};
use order_pipeline::s3_events::{self, Decision};
use order_pipeline::storage::{s3_client, ObjectStore, S3Store};
use serde_json::{json, Value};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Builds the ingestor from the environment (`DATABASE_URL`, or in AWS
/// `DATABASE_SECRET_ARN`; the usual AWS variables; `AWS_ENDPOINT_URL` for
/// LocalStack; the `CSV_MAX_*` input limits, see [`CsvLimits`]).
pub async fn ingestor_from_env() -> Result<Ingestor<S3Store>, Error> {
    let settings = order_pipeline::database_secret::database_settings().await?;
    let pool = db::connect_pool(&settings)?;
    let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Ok(
        Ingestor::new(S3Store::new(s3_client(&sdk_config)), PgStore::new(pool))
            .with_csv_limits(CsvLimits::from_env()?),
    )
}

/// Handles one invocation. An SQS batch answers with `batchItemFailures`
/// (the event source mapping needs `ReportBatchItemFailures`), so one bad
/// message never makes the good ones run again. A direct S3 event fails as a
/// whole, and Lambda's asynchronous retries take over.
pub async fn handle_event<S: ObjectStore>(
    ingestor: &Ingestor<S>,
    event: Value,
) -> Result<Value, Error> {
    if is_sqs_event(&event) {
        return Ok(handle_sqs(ingestor, event).await);
    }
    if s3_events::is_test_event(&event) {
        tracing::info!("s3:TestEvent skipped");
        return Ok(json!({"reports": [], "skipped": ["s3:TestEvent"]}));
    }
    let decisions = s3_events::decisions_from_value(event)
        .map_err(|e| format!("not an S3 or SQS event: {e}"))?;
    let (reports, skipped) = run_decisions(ingestor, decisions).await?;
    Ok(json!({"reports": reports, "skipped": skipped}))
}

fn is_sqs_event(event: &Value) -> bool {
    event
        .pointer("/Records/0/eventSource")
        .and_then(Value::as_str)
        == Some("aws:sqs")
}

async fn handle_sqs<S: ObjectStore>(ingestor: &Ingestor<S>, event: Value) -> Value {
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
        let outcome = match serde_json::from_str::<Value>(body) {
            Ok(body) if s3_events::is_test_event(&body) => {
                tracing::info!(message_id, "s3:TestEvent skipped");
                Ok(())
            }
            Ok(body) => match s3_events::decisions_from_value(body) {
                Ok(decisions) => run_decisions(ingestor, decisions).await.map(|_| ()),
                Err(e) => Err(format!("message body is not an S3 notification: {e}").into()),
            },
            Err(e) => Err(format!("message body is not JSON: {e}").into()),
        };
        if let Err(error) = outcome {
            tracing::error!(message_id, %error, "message failed; it will be retried, then dead-lettered");
            failures.push(json!({"itemIdentifier": message_id}));
        }
    }
    json!({"batchItemFailures": failures})
}

async fn run_decisions<S: ObjectStore>(
    ingestor: &Ingestor<S>,
    decisions: Vec<Decision>,
) -> Result<(Vec<IngestReport>, Vec<String>), Error> {
    let mut reports = Vec::new();
    let mut skipped = Vec::new();
    for decision in decisions {
        match decision {
            Decision::Ingest(object) => {
                let report = ingestor.ingest(&object).await.map_err(|e: IngestError| {
                    Error::from(format!("s3://{}/{}: {e}", object.bucket, object.key))
                })?;
                reports.push(report);
            }
            Decision::Skip { key, reason } => {
                tracing::info!(%key, reason, "object skipped");
                skipped.push(key);
            }
        }
    }
    Ok((reports, skipped))
}
