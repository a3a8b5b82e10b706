//! `GET /health`, served by both routers.

use crate::http::ApiError;
use crate::state::ApiState;
use axum::extract::State;
use axum::Json;

/// Health answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`
    pub status: &'static str,
    /// `ok` when the database answered.
    pub database: &'static str,
}

// 503 when the database does not answer. Public, so the answer says only
// that: the driver's error (user, host, port, the server's authentication
// detail) goes to the log.
/// Health: 200 when the database answers.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, body = Health)))]
pub(crate) async fn health(State(state): State<ApiState>) -> Result<Json<Health>, ApiError> {
    state.db.ping().await.map_err(|e| {
        tracing::error!(error = %crate::http::problem::causes(&e), "health check: the database did not answer");
        ApiError::unavailable("the database is unavailable; try again shortly")
    })?;
    Ok(Json(Health {
        status: "ok",
        database: "ok",
    }))
}
