//! The `analytics` HTTP Lambda function (API Gateway REST or HTTP API,
//! function URLs; or a local server with LOCAL_HTTP_ADDR): an axum router
//! served by `lambda_http`.

use pipeline_api::analytics::AnalyticsState;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    order_pipeline::telemetry::init();
    // Configuration, the pool and the S3 client: once per cold start.
    let state = AnalyticsState::from_env().await?;
    pipeline_api::http::serve::run("analytics", pipeline_api::analytics::router(state)).await
}
