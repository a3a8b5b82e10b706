//! The analytics function's router and state: analytics over the maintained
//! aggregates, the ingest ledger with download links, and the export of
//! processed_orders.csv.

use std::sync::Arc;

use crate::http::auth::Authenticator;
use crate::routes::{analytics, exports, health, ingestions, problems, uploads};
use crate::state::ApiState;
use axum::extract::FromRef;
use axum::Router;
use order_pipeline::config;
use order_pipeline::ingest::Ingestor;
use order_pipeline::postgres::read_model::analytics::CustomerTotalsCache;
use order_pipeline::postgres::read_model::problems::ProblemCounts;
use order_pipeline::postgres::PgStore;
use order_pipeline::presign::Presigner;
use order_pipeline::storage::S3Store;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The shared state and what only these handlers need; built once per
/// cold start.
#[derive(Clone)]
pub struct AnalyticsState {
    pub api: ApiState,
    /// The summary's customers and tickets, per data version.
    pub customer_totals: CustomerTotalsCache,
    /// The live problem lists' counts, per data version.
    pub problem_counts: ProblemCounts,
    pub files: Arc<Files>,
}

/// The bucket behind the ledger's files and the export.
pub struct Files {
    /// Where processed_orders.csv is published.
    pub bucket: String,
    pub presigner: Presigner,
    /// Reads the reports the dashboard shows (`/ingestions/{id}/report`).
    pub s3: aws_sdk_s3::Client,
    /// Publishes processed_orders.csv when it is behind (after a sale).
    pub publisher: Ingestor<S3Store>,
}

impl AnalyticsState {
    pub fn new(db: PgStore, auth: Authenticator, s3: aws_sdk_s3::Client, bucket: String) -> Self {
        Self::over(ApiState::new(db, auth), s3, bucket)
    }

    /// The shared state, with the files of `bucket` through `s3`.
    fn over(api: ApiState, s3: aws_sdk_s3::Client, bucket: String) -> Self {
        Self {
            customer_totals: CustomerTotalsCache::default(),
            problem_counts: ProblemCounts::default(),
            files: Arc::new(Files {
                bucket,
                presigner: Presigner::new(s3.clone()),
                s3: s3.clone(),
                publisher: Ingestor::new(S3Store::new(s3), api.db.clone()),
            }),
            api,
        }
    }

    /// The state a cold start builds from the environment: the shared
    /// state, the bucket and the S3 client.
    pub async fn from_env() -> Result<Self, lambda_http::Error> {
        let api = ApiState::from_env().await?;
        let bucket = config::bucket_from_env()?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let s3 = order_pipeline::storage::s3_client(&sdk);
        Ok(Self::over(api, s3, bucket))
    }
}

impl FromRef<AnalyticsState> for ApiState {
    fn from_ref(state: &AnalyticsState) -> Self {
        state.api.clone()
    }
}

impl FromRef<AnalyticsState> for Arc<Authenticator> {
    fn from_ref(state: &AnalyticsState) -> Self {
        state.api.auth.clone()
    }
}

/// The routes with their OpenAPI descriptions (one source for both).
pub fn api() -> OpenApiRouter<AnalyticsState> {
    OpenApiRouter::new()
        .routes(routes!(health::health))
        .routes(routes!(analytics::top_customers))
        .routes(routes!(analytics::unused_barcodes))
        .routes(routes!(analytics::summary))
        .routes(routes!(ingestions::list_ingestions))
        .routes(routes!(ingestions::get_ingestion))
        .routes(routes!(ingestions::get_ingestion_report))
        .routes(routes!(exports::export_processed_orders))
        .routes(routes!(uploads::create_upload))
        .routes(routes!(problems::orders_without_barcodes))
        .routes(routes!(problems::waiting_barcodes))
        .routes(routes!(problems::rejected_barcodes))
        .routes(routes!(problems::order_conflicts))
}

/// The function's router.
pub fn router(state: AnalyticsState) -> Router {
    let (routes, openapi) = api().split_for_parts();
    crate::http::finish(routes.with_state(state), &openapi)
}
