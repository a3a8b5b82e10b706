//! Uploads from the dashboard: `POST /uploads` names a CSV file and its
//! size, and answers with a presigned PUT to `incoming/<name>`, so the file
//! goes from the browser straight to S3 (never through a function) and is
//! ingested as any file dropped into the bucket is.

use crate::analytics::AnalyticsState;
use crate::http::auth::{Authorized, FilesWrite};
use crate::http::extract::ApiJson;
use crate::http::ApiError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use order_pipeline::error_chain::ErrorChain;
use order_pipeline::presign::LINK_LIFETIME;
use order_pipeline::uploads::{self, UploadRefused, UPLOAD_CONTENT_TYPE};
use utoipa::ToSchema;

/// The file to upload.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The file's name: letters, digits, `.`, `_` and `-`, ending in `.csv`
    /// (case as written); it is uploaded to `incoming/<name>`, a new
    /// version when the key exists.
    #[schema(
        min_length = 5,
        max_length = 100,
        pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]*\\.csv$"
    )]
    pub name: String,
    /// Its size in bytes, 1 to 1073741824; the upload must be exactly this long.
    #[schema(minimum = 1, maximum = 1073741824_i64)]
    pub size: i64,
}

/// Where and how to upload.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Upload {
    /// The key the file goes to.
    pub key: String,
    /// Always PUT.
    pub method: String,
    /// The presigned URL (valid 15 minutes).
    pub url: String,
    /// Headers the PUT must send as they are (the content type is signed).
    pub headers: std::collections::BTreeMap<String, String>,
    /// Seconds the URL stays valid.
    pub expires_in: u64,
}

/// A presigned PUT of one CSV file to `incoming/`: the browser uploads it
/// straight to S3, and the bucket's notification has it ingested. Follow
/// it in `GET /ingestions?key=` (its version id is in the PUT's
/// `x-amz-version-id` answer header).
#[utoipa::path(post, path = "/uploads", tag = "ingestions",
    request_body(content = UploadRequest, content_type = "application/json",
        description = "The file's name and size, as JSON of at most 16384 bytes (413 beyond)"),
    security(("bearer" = ["files:write"])),
    responses(
        (status = 201, body = Upload, description = "Upload with the URL and headers given")))]
pub(crate) async fn create_upload(
    _auth: Authorized<FilesWrite>,
    State(state): State<AnalyticsState>,
    ApiJson(request): ApiJson<UploadRequest>,
) -> Result<Response, ApiError> {
    let refused = |field: &str, e: UploadRefused| ApiError::bad_parameter(field, e);
    let key = uploads::incoming_key(&request.name).map_err(|e| refused("name", e))?;
    let size = u64::try_from(request.size).map_err(|_| {
        ApiError::bad_parameter(
            "size",
            format!("must be a number of bytes, got {}", request.size),
        )
    })?;
    uploads::check_size(size).map_err(|e| refused("size", e))?;
    let files = &state.files;
    let put = files
        .presigner
        .put_url(&files.bucket, &key, size, UPLOAD_CONTENT_TYPE)
        .await
        .map_err(|e| {
            tracing::error!(error = %ErrorChain(&e), "presigning an upload failed");
            ApiError::unavailable("the upload link cannot be signed right now; try again")
        })?;
    tracing::info!(key, size, "upload link issued");
    Ok((
        StatusCode::CREATED,
        Json(Upload {
            key,
            method: "PUT".to_owned(),
            url: put.url,
            headers: put.headers.into_iter().collect(),
            expires_in: LINK_LIFETIME.as_secs(),
        }),
    )
        .into_response())
}
