//! Routes of the analytics function.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use order_pipeline::db::PgStore;
use order_pipeline::domain::CustomerTickets;
use order_pipeline::http::{health, ApiError};

/// Default and bounds of `limit` on `/analytics/top-customers`.
pub const DEFAULT_TOP_LIMIT: i64 = 5;
pub const MAX_TOP_LIMIT: i64 = 100;

pub fn router(store: PgStore) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/analytics/top-customers", get(top_customers))
        .with_state(store)
}

#[derive(Debug, serde::Deserialize)]
pub struct TopCustomersQuery {
    /// Taken as text so that a bad value gets a problem+json answer naming it.
    limit: Option<String>,
}

/// `GET /analytics/top-customers?limit=5`: customers with the most tickets,
/// most first, ties by lower customer_id.
async fn top_customers(
    State(store): State<PgStore>,
    Query(query): Query<TopCustomersQuery>,
) -> Result<Json<Vec<CustomerTickets>>, ApiError> {
    let limit = match query.limit.as_deref() {
        None | Some("") => DEFAULT_TOP_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_TOP_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_parameter(
                    "limit",
                    format!("must be an integer from 1 to {MAX_TOP_LIMIT}, got {raw:?}"),
                ))
            }
        },
    };
    Ok(Json(store.top_customers(limit).await?))
}
