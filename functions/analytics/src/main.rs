//! The `analytics` HTTP Lambda function (API Gateway REST or HTTP API,
//! function URLs; or a local server with LOCAL_HTTP_ADDR): an axum router
//! served by `lambda_http`.

use analytics::AnalyticsState;
use order_pipeline::config;
use order_pipeline::db::{self, PgStore};
use order_pipeline::http::auth::Authenticator;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    order_pipeline::telemetry::init();
    // Configuration, the pool and the S3 client: once per cold start.
    let settings = order_pipeline::database_secret::database_settings().await?;
    // Requests give up waiting on a load after the lock timeout (503).
    let limits = order_pipeline::config::SessionLimits::api_from_env()?;
    let store = PgStore::new(db::connect_api_pool(&settings, &limits)?);
    let auth = Authenticator::from_env()?;
    let bucket = config::bucket_from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let s3 = order_pipeline::storage::s3_client(&sdk);
    let state = AnalyticsState::new(store, auth, s3, bucket);
    order_pipeline::http::serve::run(analytics::router(state)).await
}
