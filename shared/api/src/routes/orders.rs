//! Orders: the keyset-paginated listing and one order with its barcodes.

use crate::http::auth::{Authorized, OrdersRead};
use crate::http::cursor::{self, Listing, OrdersCursor};
use crate::http::extract::{parse_id, parse_limit, ApiPath, ApiQuery};
use crate::http::ApiError;
use crate::page::{self, DEFAULT_PAGE, MAX_PAGE};
use crate::state::ApiState;
use axum::extract::State;
use axum::Json;
use order_pipeline::postgres::read_model::orders::{OrderDetail, OrderSummary};
use order_pipeline::postgres::PgStore;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrdersQuery {
    /// Only this customer's orders.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 9223372036854775807_i64)]
    customer_id: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page; absent for the first page.
    #[param(value_type = Option<OrdersCursor>)]
    cursor: Option<String>,
}

/// A page of orders, by order_id.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(value_type = Option<OrdersCursor>)]
    pub next_cursor: Option<String>,
}

/// One page of orders by order_id, of one customer or all.
pub(crate) async fn order_page(
    db: &PgStore,
    customer_id: Option<i64>,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<OrderPage, ApiError> {
    let limit = parse_limit(limit, DEFAULT_PAGE, MAX_PAGE)?;
    let after = cursor::decode_id(Listing::Orders, cursor)?;
    let mut items: Vec<OrderSummary> = db.list_orders(customer_id, after, limit).await?;
    let next_cursor = page::next_cursor(&mut items, limit, Listing::Orders, |last| {
        last.order_id.to_string()
    });
    Ok(OrderPage { items, next_cursor })
}

/// Orders by order_id, keyset-paginated: walking every page lists each
/// order that existed when the walk began exactly once, even while files
/// are ingested (new orders appear at most once).
#[utoipa::path(get, path = "/orders", tag = "orders",
    params(OrdersQuery),
    security(("bearer" = ["orders:read"])),
    responses(
        (status = 200, body = OrderPage)))]
pub(crate) async fn list_orders(
    _auth: Authorized<OrdersRead>,
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<OrdersQuery>,
) -> Result<Json<OrderPage>, ApiError> {
    let customer_id = match query.customer_id.as_deref() {
        None => None,
        Some(raw) => Some(parse_id("customer_id", raw)?),
    };
    Ok(Json(
        order_page(
            &state.db,
            customer_id,
            query.limit.as_deref(),
            query.cursor.as_deref(),
        )
        .await?,
    ))
}

/// One order with its barcodes and where each came from (file and line, or
/// sale).
#[utoipa::path(get, path = "/orders/{order_id}", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64, description = "The order")),
    security(("bearer" = ["orders:read"])),
    responses(
        (status = 200, body = OrderDetail,
            links(("GetCustomer" = (operation_id = "get_customer", parameters(("customer_id" = "$response.body#/customer_id"))))))))]
pub(crate) async fn get_order(
    _auth: Authorized<OrdersRead>,
    State(state): State<ApiState>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<OrderDetail>, ApiError> {
    let order_id = parse_id("order_id", &order_id)?;
    state
        .db
        .order(order_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no order with order_id {order_id}")))
}
