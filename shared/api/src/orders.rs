//! Routes of the orders function: orders, customers, ticket sales, and the
//! whole API's OpenAPI document and docs page.

use std::sync::Arc;

use crate::http::auth::{Authenticator, Authorized, OrdersRead, OrdersWrite};
use crate::http::cursor::{self, Listing, OrdersCursor};
use crate::http::extract::{parse_id, parse_limit, ApiJson, ApiPath, ApiQuery};
use crate::http::{docs, ApiError, Health};
use crate::store::{CustomerSummary, OrderDetail, OrderSummary};
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use order_pipeline::postgres::sales::SaleOutcome;
use order_pipeline::postgres::PgStore;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Default and bound of `limit` on order listings.
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;
/// The most tickets one sale may sell.
pub const MAX_TICKETS_PER_SALE: i64 = 100;
/// Longest accepted Idempotency-Key.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Everything the handlers share; built once per cold start.
#[derive(Clone)]
pub struct OrdersState {
    pub db: PgStore,
    pub auth: Arc<Authenticator>,
}

impl OrdersState {
    pub fn new(db: PgStore, auth: Authenticator) -> Self {
        Self {
            auth: Arc::new(auth),
            db,
        }
    }
}

impl OrdersState {
    /// The state a cold start builds from the environment: the database
    /// store and the token verifier.
    pub async fn from_env() -> Result<Self, lambda_http::Error> {
        let store = crate::http::store_from_env().await?;
        Ok(Self::new(store, Authenticator::from_env()?))
    }
}

impl FromRef<OrdersState> for Arc<Authenticator> {
    fn from_ref(state: &OrdersState) -> Self {
        state.auth.clone()
    }
}

/// The routes with their OpenAPI descriptions (one source for both).
pub fn api() -> OpenApiRouter<OrdersState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(list_orders, create_order))
        .routes(routes!(get_order))
        .routes(routes!(get_customer))
        .routes(routes!(customer_orders))
}

/// The whole API's OpenAPI 3.1 document: this function's routes and the
/// analytics function's, as served under one base URL.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().split_for_parts().1;
    doc.merge(crate::analytics::openapi());
    docs::complete(
        doc,
        "Order pipeline API",
        "Orders, customers, ticket sales, analytics, the ingest ledger and exports. \
         JSON, snake_case; errors are application/problem+json (RFC 9457).",
    )
}

/// The function's router, including `/openapi.json` and `/docs`.
pub fn router(state: OrdersState) -> Router {
    let (routes, _) = api().split_for_parts();
    let openapi = openapi();
    let routes = routes
        .merge(docs::routes(openapi.clone()))
        .with_state(state);
    crate::http::finish(routes, &openapi)
}

/// Health: 200 when the database answers.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, body = Health)))]
async fn health(State(state): State<OrdersState>) -> Result<Json<Health>, ApiError> {
    crate::http::health(State(state.db)).await
}

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
#[derive(Debug, serde::Serialize, serde::Deserialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(value_type = Option<OrdersCursor>)]
    pub next_cursor: Option<String>,
}

async fn order_page(
    state: &OrdersState,
    customer_id: Option<i64>,
    query: &OrdersQuery,
) -> Result<OrderPage, ApiError> {
    let limit = parse_limit(query.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    let after = cursor::decode_id(Listing::Orders, query.cursor.as_deref())?;
    let mut items: Vec<OrderSummary> = (state.db.list_orders(customer_id, after, limit).await?)
        .into_iter()
        .map(Into::into)
        .collect();
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|last| cursor::encode(Listing::Orders, &last.order_id.to_string()))
    } else {
        None
    };
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
async fn list_orders(
    _auth: Authorized<OrdersRead>,
    State(state): State<OrdersState>,
    ApiQuery(query): ApiQuery<OrdersQuery>,
) -> Result<Json<OrderPage>, ApiError> {
    let customer_id = match query.customer_id.as_deref() {
        None => None,
        Some(raw) => Some(parse_id("customer_id", raw)?),
    };
    Ok(Json(order_page(&state, customer_id, &query).await?))
}

/// A sale request.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaleRequest {
    /// The buying customer (positive).
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    pub customer_id: i64,
    /// How many tickets, 1 to 100.
    #[schema(minimum = 1, maximum = 100)]
    pub tickets: i64,
}

/// Sells `tickets` unused barcodes to a new order, all or nothing. With an
/// `Idempotency-Key` header a retried request returns the first answer
/// instead of selling twice (the same key with another body: 422).
#[utoipa::path(post, path = "/orders", tag = "orders",
    request_body(content = SaleRequest, content_type = "application/json",
        description = "The sale, as JSON of at most 16384 bytes (413 beyond)"),
    params(("Idempotency-Key" = Option<String>, Header, max_length = 255, pattern = "^[!-~]([ -~]*[!-~])?$",
        description = "Makes retries safe: the same key returns the first sale (printable ASCII, at most 255 characters)")),
    security(("bearer" = ["orders:write"])),
    responses(
        (status = 201, body = OrderDetail, description = "Sold; Location names the order",
            headers(("Location" = String, description = "The order's URL: /orders/{order_id}")),
            links(
                ("GetOrder" = (operation_id = "get_order", parameters(("order_id" = "$response.body#/order_id")))),
                ("GetCustomer" = (operation_id = "get_customer", parameters(("customer_id" = "$response.body#/customer_id")))),
                ("GetCustomerOrders" = (operation_id = "customer_orders", parameters(("customer_id" = "$response.body#/customer_id")))))),
        (status = 200, body = OrderDetail, description = "A retry: the sale made for this Idempotency-Key",
            links(("GetOrder" = (operation_id = "get_order", parameters(("order_id" = "$response.body#/order_id")))))),
        (status = 409, description = "Not enough unused barcodes; nothing was sold")))]
async fn create_order(
    auth: Authorized<OrdersWrite>,
    State(state): State<OrdersState>,
    headers: HeaderMap,
    ApiJson(sale): ApiJson<SaleRequest>,
) -> Result<Response, ApiError> {
    if sale.customer_id <= 0 {
        return Err(ApiError::bad_parameter(
            "customer_id",
            format!("must be a positive integer, got {}", sale.customer_id),
        ));
    }
    if !(1..=MAX_TICKETS_PER_SALE).contains(&sale.tickets) {
        return Err(ApiError::bad_parameter(
            "tickets",
            format!(
                "must be from 1 to {MAX_TICKETS_PER_SALE}, got {}",
                sale.tickets
            ),
        ));
    }
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(idempotency_key(value.as_bytes())?),
    };
    // Keys are the client's: scoped by the token's subject, so two clients
    // choosing the same key never see each other's sale.
    let key = key.map(|key| {
        let subject = auth.claims.sub.as_deref().unwrap_or("");
        format!("{}:{subject}:{key}", subject.len())
    });
    match state.db.sell(sale.customer_id, sale.tickets, key.as_deref()).await? {
        SaleOutcome::Sold(order) => {
            let order = OrderDetail::from(order);
            tracing::info!(order_id = order.order_id, tickets = order.tickets, "sold tickets");
            let location = format!("/orders/{}", order.order_id);
            Ok((
                StatusCode::CREATED,
                [(axum::http::header::LOCATION, location)],
                Json(order),
            )
                .into_response())
        }
        SaleOutcome::Replayed(order) => Ok((
            StatusCode::OK,
            [("idempotent-replayed", "true")],
            Json(OrderDetail::from(order)),
        )
            .into_response()),
        SaleOutcome::NotEnough { wanted, available } => Err(ApiError::conflict(format!(
            "only {available} unused barcodes are free, {wanted} were asked for; nothing was sold"
        ))),
        SaleOutcome::KeyReused => Err(ApiError::unprocessable(
            "this Idempotency-Key was already used for a different request; use a new key for a new sale",
        )),
    }
}

/// The Idempotency-Key header's value, if it is one: printable ASCII with
/// spaces only inside (HTTP trims them at the ends), at most
/// [`MAX_IDEMPOTENCY_KEY`] long; the document's pattern says the same.
fn idempotency_key(value: &[u8]) -> Result<&str, ApiError> {
    let printable = |b: &u8| (b'!'..=b'~').contains(b);
    let valid = (1..=MAX_IDEMPOTENCY_KEY).contains(&value.len())
        && value.first().is_some_and(printable)
        && value.last().is_some_and(printable)
        && value.iter().all(|b| *b == b' ' || printable(b));
    match std::str::from_utf8(value) {
        Ok(key) if valid => Ok(key),
        _ => Err(ApiError::bad_parameter(
            "Idempotency-Key",
            format!(
                "must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters (spaces only inside)"
            ),
        )),
    }
}

/// One order with its barcodes and where each came from (file and line, or
/// sale).
#[utoipa::path(get, path = "/orders/{order_id}", tag = "orders",
    params(("order_id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64, description = "The order")),
    security(("bearer" = ["orders:read"])),
    responses(
        (status = 200, body = OrderDetail,
            links(("GetCustomer" = (operation_id = "get_customer", parameters(("customer_id" = "$response.body#/customer_id"))))))))]
async fn get_order(
    _auth: Authorized<OrdersRead>,
    State(state): State<OrdersState>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<OrderDetail>, ApiError> {
    let order_id = parse_id("order_id", &order_id)?;
    state
        .db
        .order(order_id)
        .await?
        .map(|order| Json(order.into()))
        .ok_or_else(|| ApiError::not_found(format!("no order with order_id {order_id}")))
}

/// A customer's order and ticket counts.
#[utoipa::path(get, path = "/customers/{customer_id}", tag = "customers",
    params(("customer_id" = i64, Path, minimum = 1, maximum = 9223372036854775807_i64, description = "The customer")),
    security(("bearer" = ["orders:read"])),
    responses(
        (status = 200, body = CustomerSummary)))]
async fn get_customer(
    _auth: Authorized<OrdersRead>,
    State(state): State<OrdersState>,
    ApiPath(customer_id): ApiPath<String>,
) -> Result<Json<CustomerSummary>, ApiError> {
    let customer_id = parse_id("customer_id", &customer_id)?;
    state
        .db
        .customer(customer_id)
        .await?
        .map(|customer| Json(customer.into()))
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
async fn customer_orders(
    _auth: Authorized<OrdersRead>,
    State(state): State<OrdersState>,
    ApiPath(customer_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<CustomerOrdersQuery>,
) -> Result<Json<OrderPage>, ApiError> {
    let customer_id = parse_id("customer_id", &customer_id)?;
    let query = OrdersQuery {
        customer_id: None,
        limit: query.limit,
        cursor: query.cursor,
    };
    let page = order_page(&state, Some(customer_id), &query).await?;
    if page.items.is_empty() && query.cursor.is_none() {
        return Err(unknown_customer(customer_id));
    }
    Ok(Json(page))
}
