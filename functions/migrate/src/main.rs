//! The `migrate` Lambda function: `make deploy` invokes it after each deploy
//! to bring the PostgreSQL schema up to date and create the functions'
//! database users (any event; idempotent).

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    order_pipeline::telemetry::init();
    let settings = order_pipeline::postgres::secret::database_settings().await?;
    let pool = migrate::pool(&settings)?;
    let pool = &pool;
    let users = migrate::function_users_from_env().await?;
    let users = &users;
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        // Lambda reports the error's message (what failed and what to do).
        migrate::handle(pool, users).await.map_err(Error::from)
    }))
    .await
}
