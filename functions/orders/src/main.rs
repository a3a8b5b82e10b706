//! The `orders` HTTP Lambda function (API Gateway REST or HTTP API,
//! function URLs; or a local server with LOCAL_HTTP_ADDR): an axum router
//! served by `lambda_http`.

use pipeline_api::state::ApiState;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    order_pipeline::telemetry::init();
    // Configuration and the pool: once per cold start.
    let state = ApiState::from_env().await?;
    pipeline_api::http::serve::run("orders", pipeline_api::orders::router(state)).await
}
