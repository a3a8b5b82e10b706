//! The export: processed_orders.csv, republished when stale, served as a
//! redirect to a presigned link.

use crate::analytics::AnalyticsState;
use crate::http::auth::{AnalyticsRead, Authorized};
use crate::http::{etag, ApiError};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use order_pipeline::config::PROCESSED_ORDERS_KEY;
use order_pipeline::error_chain::ErrorChain;

/// The current processed_orders.csv: a redirect to a presigned S3 link.
/// Republished first when a sale or ingest made it stale.
#[utoipa::path(get, path = "/exports/processed-orders.csv", tag = "exports",
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 302, description = "Location: a presigned link to processed/processed_orders.csv (valid 15 minutes)"),
        (status = 304, description = "Unchanged since the ETag in If-None-Match")))]
pub(crate) async fn export_processed_orders(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let output_version = state.api.db.versions().await?.output_version;
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
