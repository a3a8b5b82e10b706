//! The `analytics` HTTP Lambda function (API Gateway REST or HTTP API,
//! function URLs): an axum router served by `lambda_http`.

use order_pipeline::db::{self, PgStore};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    order_pipeline::telemetry::init();
    // Configuration and the pool: once per cold start.
    let settings = order_pipeline::database_secret::database_settings().await?;
    let store = PgStore::new(db::connect_pool(&settings)?);
    lambda_http::run(analytics::router(store)).await
}
