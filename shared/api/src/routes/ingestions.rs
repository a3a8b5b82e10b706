//! The ingest ledger, newest first, each row with presigned links to
//! download its report and rejected rows.

use crate::analytics::{AnalyticsState, Files};
use crate::http::auth::{AnalyticsRead, Authorized};
use crate::http::cursor::{self, IngestionsCursor, Listing};
use crate::http::extract::{parse_id, parse_limit, ApiPath, ApiQuery};
use crate::http::ApiError;
use crate::page::{self, DEFAULT_PAGE, MAX_PAGE};
use axum::extract::State;
use axum::Json;
use order_pipeline::domain::outcome::LedgerStatus;
use order_pipeline::error_chain::ErrorChain;
use order_pipeline::postgres::read_model::ingestions::{IngestionFilter, IngestionRow};
use utoipa::{IntoParams, ToSchema};

/// The longest object key (S3's limit, 1024 bytes), as `key` declares it.
const MAX_KEY_LEN: usize = 1024;

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
            .enum_values(Some(LedgerStatus::NAMES))
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
    /// Only the versions of this object key, e.g. `incoming/orders.csv`.
    #[param(max_length = 1024)]
    key: Option<String>,
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
pub(crate) async fn list_ingestions(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    ApiQuery(query): ApiQuery<IngestionsQuery>,
) -> Result<Json<IngestionPage>, ApiError> {
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(LedgerStatus::parse(s).ok_or_else(|| {
            ApiError::bad_parameter(
                "status",
                format!(
                    "must be one of {}, got {s:?}",
                    LedgerStatus::NAMES.join(", ")
                ),
            )
        })?),
    };
    let limit = parse_limit(query.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    let before = cursor::decode_id(Listing::Ingestions, query.cursor.as_deref())?;
    if let Some(key) = &query.key {
        if key.chars().count() > MAX_KEY_LEN {
            return Err(ApiError::bad_parameter(
                "key",
                format!("must be an object key of at most {MAX_KEY_LEN} characters"),
            ));
        }
    }
    let filter = IngestionFilter {
        status,
        key: query.key,
    };
    let mut rows: Vec<IngestionRow> = state.api.db.ingestions(&filter, before, limit).await?;
    let next_cursor = page::next_cursor(&mut rows, limit, Listing::Ingestions, |last| {
        last.id.to_string()
    });
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(with_links(&state.files, row).await?);
    }
    Ok(Json(IngestionPage { items, next_cursor }))
}

/// The ledger row a path's `id` names, or 404.
async fn ledger_row(state: &AnalyticsState, id: &str) -> Result<IngestionRow, ApiError> {
    let id = parse_id("id", id)?;
    let row = state
        .api
        .db
        .ingestion(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no ingestion with id {id}")))?;
    Ok(row)
}

/// One ledger row with download links.
#[utoipa::path(get, path = "/ingestions/{id}", tag = "ingestions",
    params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64, description = "The ledger id")),
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, body = Ingestion)))]
pub(crate) async fn get_ingestion(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Ingestion>, ApiError> {
    let row = ledger_row(&state, &id).await?;
    Ok(Json(with_links(&state.files, row).await?))
}

/// The largest report the API passes on; a report lists at most
/// `REPORTED_PROBLEMS` problems, so a real one is far smaller.
const MAX_REPORT_BYTES: usize = 1 << 20;

/// The report of one ingestion as the ingest wrote it (reports/…/*.json):
/// counts, timings and the first problems by line, each with its line,
/// field, value and reason. Served through the API so that a page on the
/// API's origin can read it without the bucket's CORS.
#[utoipa::path(get, path = "/ingestions/{id}/report", tag = "ingestions",
    params(("id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64, description = "The ledger id")),
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, body = Object, content_type = "application/json",
            description = "The report (see README, What every input produces)")))]
pub(crate) async fn get_ingestion_report(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    ApiPath(id): ApiPath<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let row = ledger_row(&state, &id).await?;
    let id = row.id;
    let Some(key) = row.report_key.as_deref() else {
        return Err(ApiError::not_found(format!(
            "ingestion {id} has no report yet (status {}); try again when it has finished",
            row.status
        )));
    };
    let unavailable = |e: &dyn std::error::Error| {
        tracing::error!(error = %e, bucket = %row.bucket, key, "reading a report failed");
        ApiError::unavailable("the report cannot be read from the bucket right now; try again")
    };
    let object = state
        .files
        .s3
        .get_object()
        .bucket(&row.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| {
            if e.as_service_error().is_some_and(|e| e.is_no_such_key()) {
                return ApiError::not_found(format!(
                    "the report of ingestion {id} is no longer in the bucket ({key})"
                ));
            }
            let e = aws_sdk_s3::error::DisplayErrorContext(e);
            unavailable(&std::io::Error::other(e.to_string()))
        })?;
    if object.content_length().unwrap_or(0) as usize > MAX_REPORT_BYTES {
        return Err(ApiError::unavailable(format!(
            "the report of ingestion {id} is larger than {MAX_REPORT_BYTES} bytes; download it from report_url"
        )));
    }
    let body = object
        .body
        .collect()
        .await
        .map_err(|e| unavailable(&e))?
        .into_bytes();
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
