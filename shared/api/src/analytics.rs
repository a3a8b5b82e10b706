//! Routes of the analytics function: analytics over the maintained
//! aggregates, the ingest ledger with download links, and the export of
//! processed_orders.csv.

use std::sync::Arc;

use crate::http::auth::{AnalyticsRead, Authenticator, Authorized};
use crate::http::cursor::{self, IngestionsCursor, Listing, UnusedBarcodesCursor};
use crate::http::extract::{parse_id, parse_limit, parse_limit_from, ApiPath, ApiQuery};
use crate::http::{etag, ApiError, Health};
use crate::store::{IngestionRow, Summary};
use axum::extract::{FromRef, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use order_pipeline::config::{self, PROCESSED_ORDERS_KEY};
use order_pipeline::error_chain::ErrorChain;
use order_pipeline::ingest::Ingestor;
use order_pipeline::postgres::ledger::INGESTION_STATUSES;
use order_pipeline::postgres::read_model::analytics::CustomerTotalsCache;
use order_pipeline::postgres::PgStore;
use order_pipeline::presign::Presigner;
use order_pipeline::storage::S3Store;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Default and bounds of `limit` on `/analytics/top-customers`.
pub const DEFAULT_TOP_LIMIT: i64 = 5;
pub const MAX_TOP_LIMIT: i64 = 100;
/// Default and bound of `limit` on the other listings.
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;

/// Everything the handlers share; built once per cold start.
#[derive(Clone)]
pub struct AnalyticsState {
    pub db: PgStore,
    /// The summary's customers and tickets, per data version.
    pub customer_totals: CustomerTotalsCache,
    pub auth: Arc<Authenticator>,
    pub files: Arc<Files>,
}

/// The bucket behind the ledger's files and the export.
pub struct Files {
    /// Where processed_orders.csv is published.
    pub bucket: String,
    pub presigner: Presigner,
    /// Publishes processed_orders.csv when it is behind (after a sale).
    pub publisher: Ingestor<S3Store>,
}

impl AnalyticsState {
    pub fn new(db: PgStore, auth: Authenticator, s3: aws_sdk_s3::Client, bucket: String) -> Self {
        Self {
            customer_totals: CustomerTotalsCache::default(),
            auth: Arc::new(auth),
            files: Arc::new(Files {
                bucket,
                presigner: Presigner::new(s3.clone()),
                publisher: Ingestor::new(S3Store::new(s3), db.clone()),
            }),
            db,
        }
    }
}

impl AnalyticsState {
    /// The state a cold start builds from the environment: the database
    /// store, the token verifier, the bucket and the S3 client.
    pub async fn from_env() -> Result<Self, lambda_http::Error> {
        let store = crate::http::store_from_env().await?;
        let auth = Authenticator::from_env()?;
        let bucket = config::bucket_from_env()?;
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let s3 = order_pipeline::storage::s3_client(&sdk);
        Ok(Self::new(store, auth, s3, bucket))
    }
}

impl FromRef<AnalyticsState> for Arc<Authenticator> {
    fn from_ref(state: &AnalyticsState) -> Self {
        state.auth.clone()
    }
}

/// The routes with their OpenAPI descriptions (one source for both).
pub fn api() -> OpenApiRouter<AnalyticsState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(top_customers))
        .routes(routes!(unused_barcodes))
        .routes(routes!(summary))
        .routes(routes!(list_ingestions))
        .routes(routes!(get_ingestion))
        .routes(routes!(export_processed_orders))
}

/// The function's router.
pub fn router(state: AnalyticsState) -> Router {
    let (routes, openapi) = api().split_for_parts();
    crate::http::finish(routes.with_state(state), &openapi)
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

/// Health: 200 when the database answers.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, body = Health)))]
async fn health(State(state): State<AnalyticsState>) -> Result<Json<Health>, ApiError> {
    crate::http::health(State(state.db)).await
}

#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopCustomersQuery {
    /// How many customers, 1 to 100 (default 5).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// A customer and their tickets.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct TopCustomer {
    pub customer_id: i64,
    pub tickets: i64,
}

/// Customers with the most tickets, most first; ties by lower customer_id.
#[utoipa::path(get, path = "/analytics/top-customers", tag = "analytics",
    params(TopCustomersQuery),
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, body = [TopCustomer], description = "Top customers; ETag follows the data version",
            links(("GetTopCustomer" = (operation_id = "get_customer", parameters(("customer_id" = "$response.body#/0/customer_id")))))),
        (status = 304, description = "Unchanged since the ETag in If-None-Match")))]
async fn top_customers(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<TopCustomersQuery>,
) -> Result<Response, ApiError> {
    let limit = parse_limit(query.limit.as_deref(), DEFAULT_TOP_LIMIT, MAX_TOP_LIMIT)?;
    let top = state.db.top_customers(limit).await?;
    Ok(etag::conditional(
        &headers,
        &etag::for_version("data", top.data_version),
        || {
            Json(
                top.customers
                    .into_iter()
                    .map(|t| TopCustomer {
                        customer_id: t.customer_id.get(),
                        tickets: t.tickets,
                    })
                    .collect::<Vec<_>>(),
            )
        },
    ))
}

#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 0 to 1000 (default 100); 0 gives the count alone.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page; absent for the first page.
    #[param(value_type = Option<UnusedBarcodesCursor>)]
    cursor: Option<String>,
}

/// The unused barcodes: how many, and a page of them in code order.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct UnusedBarcodes {
    /// All unused barcodes (from the maintained aggregate).
    pub count: i64,
    pub barcodes: Vec<String>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(value_type = Option<UnusedBarcodesCursor>)]
    pub next_cursor: Option<String>,
}

/// Unused (unsold) barcodes: the count and one page of codes.
#[utoipa::path(get, path = "/analytics/unused-barcodes", tag = "analytics",
    params(PageQuery),
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, body = UnusedBarcodes),
        (status = 304, description = "Unchanged since the ETag in If-None-Match")))]
async fn unused_barcodes(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    // limit=0: the count alone, straight from the aggregate.
    let limit = parse_limit_from(query.limit.as_deref(), 0, DEFAULT_PAGE, MAX_PAGE)?;
    let after = cursor::decode(Listing::UnusedBarcodes, query.cursor.as_deref())?;
    let unused = state.db.unused_barcodes(after.as_deref(), limit).await?;
    let (count, version) = (unused.count, unused.data_version);
    let mut barcodes: Vec<String> = unused
        .barcodes
        .iter()
        .map(|barcode| barcode.as_str().to_owned())
        .collect();
    let next_cursor =
        next_page(&mut barcodes, limit).map(|last| cursor::encode(Listing::UnusedBarcodes, last));
    Ok(etag::conditional(
        &headers,
        &etag::for_version("data", version),
        || {
            Json(UnusedBarcodes {
                count,
                barcodes,
                next_cursor,
            })
        },
    ))
}

/// Trims the extra row a page query fetched; returns the last key's item
/// when there is a next page.
fn next_page<T>(items: &mut Vec<T>, limit: i64) -> Option<&T> {
    if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last()
    } else {
        None
    }
}

/// Totals: orders, customers, tickets, unused barcodes, rejected rows and
/// the latest ingestion, from the maintained aggregates.
#[utoipa::path(get, path = "/analytics/summary", tag = "analytics",
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, body = Summary),
        (status = 304, description = "Unchanged since the ETag in If-None-Match")))]
async fn summary(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let summary = Summary::from(state.db.summary(&state.customer_totals).await?);
    let tag = etag::for_version("data", summary.data_version);
    Ok(etag::conditional(&headers, &tag, || Json(summary)))
}

/// A ledger row with links to download its files.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Ingestion {
    #[serde(flatten)]
    pub row: IngestionRow,
    /// Presigned link to the report (valid 15 minutes).
    pub report_url: Option<String>,
    /// Presigned link to the rejected rows (valid 15 minutes).
    pub rejects_url: Option<String>,
}

/// A page of the ledger.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct IngestionPage {
    pub items: Vec<Ingestion>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(value_type = Option<IngestionsCursor>)]
    pub next_cursor: Option<String>,
}

/// The document's schema of the `status` filter: the ledger's statuses.
pub struct IngestionStatus;

impl utoipa::PartialSchema for IngestionStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(INGESTION_STATUSES))
            .into()
    }
}

impl ToSchema for IngestionStatus {}

#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IngestionsQuery {
    /// Only rows with this status: loading, loaded, rejected or failed.
    #[param(inline, value_type = Option<IngestionStatus>)]
    status: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<IngestionsCursor>)]
    cursor: Option<String>,
}

async fn with_links(files: &Files, row: IngestionRow) -> Result<Ingestion, ApiError> {
    let link = |key: Option<String>| {
        let bucket = row.bucket.clone();
        async move {
            match key {
                Some(key) => files
                    .presigner
                    .get_url(&bucket, &key)
                    .await
                    .map(Some)
                    .map_err(|e| {
                        tracing::error!(error = %ErrorChain(&e), "presigning failed");
                        ApiError::unavailable(
                            "download links cannot be signed right now; try again",
                        )
                    }),
                None => Ok(None),
            }
        }
    };
    let report_url = link(row.report_key.clone()).await?;
    let rejects_url = link(row.rejects_key.clone()).await?;
    Ok(Ingestion {
        row,
        report_url,
        rejects_url,
    })
}

/// The ingest ledger, newest first, with download links per file.
#[utoipa::path(get, path = "/ingestions", tag = "ingestions",
    params(IngestionsQuery),
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, body = IngestionPage)))]
async fn list_ingestions(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    ApiQuery(query): ApiQuery<IngestionsQuery>,
) -> Result<Json<IngestionPage>, ApiError> {
    let status = match query.status.as_deref() {
        None => None,
        Some(s) if INGESTION_STATUSES.contains(&s) => Some(s),
        Some(s) => {
            return Err(ApiError::bad_parameter(
                "status",
                format!(
                    "must be one of {}, got {s:?}",
                    INGESTION_STATUSES.join(", ")
                ),
            ))
        }
    };
    let limit = parse_limit(query.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    let before = cursor::decode_id(Listing::Ingestions, query.cursor.as_deref())?;
    let mut rows: Vec<IngestionRow> = (state.db.ingestions(status, before, limit).await?)
        .into_iter()
        .map(Into::into)
        .collect();
    let next_cursor = next_page(&mut rows, limit)
        .map(|last| cursor::encode(Listing::Ingestions, &last.id.to_string()));
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(with_links(&state.files, row).await?);
    }
    Ok(Json(IngestionPage { items, next_cursor }))
}

/// One ledger row with download links.
#[utoipa::path(get, path = "/ingestions/{id}", tag = "ingestions",
    params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64, description = "The ledger id")),
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, body = Ingestion)))]
async fn get_ingestion(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Ingestion>, ApiError> {
    let id = parse_id("id", &id)?;
    let row = state
        .db
        .ingestion(id)
        .await?
        .map(IngestionRow::from)
        .ok_or_else(|| ApiError::not_found(format!("no ingestion with id {id}")))?;
    Ok(Json(with_links(&state.files, row).await?))
}

/// The current processed_orders.csv: a redirect to a presigned S3 link.
/// Republished first when a sale or ingest made it stale.
#[utoipa::path(get, path = "/exports/processed-orders.csv", tag = "exports",
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 302, description = "Location: a presigned link to processed/processed_orders.csv (valid 15 minutes)"),
        (status = 304, description = "Unchanged since the ETag in If-None-Match")))]
async fn export_processed_orders(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let output_version = state.db.versions().await?.output_version;
    let tag = etag::for_version("output", output_version);
    if etag::matches(&headers, &tag) {
        return Ok(etag::conditional(&headers, &tag, || {
            StatusCode::NOT_MODIFIED
        }));
    }
    let files = &state.files;
    files
        .publisher
        .publish_processed_orders(&files.bucket)
        .await
        .map_err(|e| {
            // Behind an ingest's own publish, or a load's locks: busy.
            ApiError::busy_or(&e, || {
                tracing::error!(error = %e, "publishing processed_orders.csv failed");
                ApiError::unavailable(
                    "processed_orders.csv could not be brought up to date; try again",
                )
            })
        })?;
    let url = files
        .presigner
        .get_url(&files.bucket, PROCESSED_ORDERS_KEY)
        .await
        .map_err(|e| {
            tracing::error!(error = %ErrorChain(&e), "presigning failed");
            ApiError::unavailable("the download link cannot be signed right now; try again")
        })?;
    let mut response = etag::conditional(&headers, &tag, || StatusCode::FOUND);
    if let Ok(location) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response.into_response())
}
