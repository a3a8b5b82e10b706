//! HTTP plumbing shared by the API functions: errors as RFC 9457
//! `application/problem+json`, and the health check.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::db::PgStore;

/// An error answer. Every handler returns this, so no client input can turn
/// into an unexplained 500.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
}

impl ApiError {
    pub fn bad_parameter(name: &str, detail: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title: "Invalid query parameter",
            detail: format!("{name}: {detail}"),
        }
    }

    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Database unavailable",
            detail: detail.to_string(),
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(err: crate::db::DbError) -> Self {
        tracing::error!(error = %err, "database error");
        Self::unavailable("the database could not answer; try again shortly")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// `GET /health`: 200 when the database answers, 503 otherwise.
pub async fn health(State(db): State<PgStore>) -> Result<Json<serde_json::Value>, ApiError> {
    db.ping()
        .await
        .map_err(|e| ApiError::unavailable(format!("database check failed: {e}")))?;
    Ok(Json(serde_json::json!({"status": "ok", "database": "ok"})))
}
