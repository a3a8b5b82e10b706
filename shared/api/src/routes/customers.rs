//! Customers: their order and ticket counts, and their orders.

use super::orders::{order_page, OrderPage};
use crate::http::auth::{Authorized, OrdersRead};
use crate::http::cursor::OrdersCursor;
use crate::http::extract::{parse_id, ApiPath, ApiQuery};
use crate::http::ApiError;
use crate::state::ApiState;
use axum::extract::State;
use axum::Json;
use order_pipeline::postgres::read_model::customers::CustomerSummary;
use utoipa::IntoParams;

/// A customer's order and ticket counts.
#[utoipa::path(get, path = "/customers/{customer_id}", tag = "customers",
    params(("customer_id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64, description = "The customer")),
    security(("bearer" = ["orders:read"])),
    responses(
        (status = 200, body = CustomerSummary)))]
pub(crate) async fn get_customer(
    _auth: Authorized<OrdersRead>,
    State(state): State<ApiState>,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<CustomerSummary>, ApiError> {
    let customer_id = parse_id("customer_id", &customer_id)?;
    state
        .db
        .customer(customer_id)
        .await?
        .map(Json)
        .ok_or_else(|| unknown_customer(customer_id))
}

fn unknown_customer(customer_id: i64) -> ApiError {
    ApiError::not_found(format!("no customer {customer_id}: no orders or tickets"))
}

#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CustomerOrdersQuery {
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<OrdersCursor>)]
    cursor: Option<String>,
}

/// A customer's orders, by order_id, keyset-paginated.
#[utoipa::path(get, path = "/customers/{customer_id}/orders", tag = "customers",
    params(("customer_id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64, description = "The customer"), CustomerOrdersQuery),
    security(("bearer" = ["orders:read"])),
    responses(
        (status = 200, body = OrderPage)))]
pub(crate) async fn customer_orders(
    _auth: Authorized<OrdersRead>,
    State(state): State<ApiState>,
    ApiPath(customer_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<CustomerOrdersQuery>,
) -> Result<Json<OrderPage>, ApiError> {
    let customer_id = parse_id("customer_id", &customer_id)?;
    let page = order_page(
        &state.db,
        Some(customer_id),
        query.limit.as_deref(),
        query.cursor.as_deref(),
    )
    .await?;
    if page.items.is_empty() && query.cursor.is_none() {
        return Err(unknown_customer(customer_id));
    }
    Ok(Json(page))
}
