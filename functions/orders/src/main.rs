//! The `orders` HTTP Lambda function (API Gateway REST or HTTP API,
//! function URLs; or a local server with LOCAL_HTTP_ADDR): an axum router
//! served by `lambda_http`.

use order_pipeline::db::{self, PgStore};
use order_pipeline::http::auth::Authenticator;
use orders::OrdersState;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    order_pipeline::telemetry::init();
    // Configuration and the pool: once per cold start.
    let settings = order_pipeline::database_secret::database_settings().await?;
    // Requests give up waiting on a load after the lock timeout (503).
    let limits = order_pipeline::config::SessionLimits::api_from_env()?;
    let store = PgStore::new(db::connect_api_pool(&settings, &limits)?);
    let state = OrdersState::new(store, Authenticator::from_env()?);
    order_pipeline::http::serve::run(orders::router(state)).await
}
