//! Ticket sales: `POST /orders` sells unused barcodes to a new order, safe
//! to retry with an Idempotency-Key.

use crate::http::auth::{Authorized, OrdersWrite};
use crate::http::extract::ApiJson;
use crate::http::ApiError;
use crate::state::ApiState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use order_pipeline::postgres::read_model::orders::OrderDetail;
use order_pipeline::postgres::sales::SaleOutcome;
use utoipa::ToSchema;

/// The most tickets one sale may sell.
pub const MAX_TICKETS_PER_SALE: i64 = 100;
/// Longest accepted Idempotency-Key.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

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
pub(crate) async fn create_order(
    auth: Authorized<OrdersWrite>,
    State(state): State<ApiState>,
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
            tracing::info!(order_id = order.order_id.get(), tickets = order.tickets, "sold tickets");
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
            Json(order),
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
