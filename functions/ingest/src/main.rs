//! The `ingest` Lambda function: S3 notifications (direct, or through SQS)
//! in, rows in PostgreSQL and `processed/processed_orders.csv` out.
// The handler future nests deeply (SDK, pool, COPY): the default limit is too low.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    order_pipeline::telemetry::init();
    // Clients, configuration and the pool: once per cold start.
    let ingestor = ingest::ingestor_from_env().await?;
    let ingestor = &ingestor;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        ingest::handle_event(ingestor, event.payload).await
    }))
    .await
}
