//! The `ingest` Lambda function: S3 notifications (direct, or through SQS)
//! in, rows in PostgreSQL and `processed/processed_orders.csv` out.
// The handler future nests deeply (SDK, pool, COPY): the default limit is too low.
#![recursion_limit = "256"]

use std::time::{Duration, UNIX_EPOCH};

use ingest::budget::{self, SystemClock, TimeBudget};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    order_pipeline::telemetry::init();
    // Clients, configuration and the pool: once per cold start.
    let ingestor = ingest::ingestor_from_env().await?;
    let ingestor = &ingestor;
    let reserve = budget::reserve_from_env()?;
    // Its EMF metrics are written after each invocation.
    let metrics = order_pipeline::metrics::init("ingest")
        .ok_or("a metrics collector is installed already")?;
    order_pipeline::metrics::lambda::handler::run(
        metrics,
        move |event: LambdaEvent<Value>| async move {
            let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            let mut budget = TimeBudget::for_invocation(deadline, reserve, &SystemClock);
            ingest::handle_invocation(ingestor, event.payload, &mut budget).await
        },
    )
    .await
}
