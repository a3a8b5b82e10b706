//! `apiserve --addr 127.0.0.1:9300`: the orders and analytics functions
//! under one base URL (see the library), configured from the environment
//! as each function is at its cold start (DATABASE_URL, JWT_SECRET, BUCKET,
//! AWS_ENDPOINT_URL, ...).

use apiserve::{gateway, RouterMap};
use clap::Parser;
use pipeline_api::analytics::AnalyticsState;
use pipeline_api::state::ApiState;

#[derive(Parser)]
#[command(about = "Serve the whole HTTP API under one base URL, as `cargo lambda watch` does")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9300")]
    addr: String,
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    order_pipeline::telemetry::init();
    let args = Args::parse();
    // The functions' EMF metrics, written to stdout every few seconds.
    let _ = order_pipeline::metrics::init("apiserve");
    let orders = pipeline_api::orders::router(ApiState::from_env().await?);
    let analytics = pipeline_api::analytics::router(AnalyticsState::from_env().await?);
    let router = gateway(RouterMap::of_workspace(), orders, analytics);
    pipeline_api::http::serve::serve_local(router, &args.addr).await
}
