//! Analytics over the maintained aggregates: top customers, unused
//! barcodes and the summary, each with an ETag of the data version.

use crate::analytics::AnalyticsState;
use crate::http::auth::{AnalyticsRead, Authorized};
use crate::http::cursor::{self, Listing, UnusedBarcodesCursor};
use crate::http::etag::{self, NotModified};
use crate::http::extract::{parse_limit, parse_limit_from, ApiQuery};
use crate::http::ApiError;
use crate::page::{self, DEFAULT_PAGE, DEFAULT_TOP_LIMIT, MAX_PAGE, MAX_TOP_LIMIT};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use order_pipeline::postgres::read_model::analytics::Summary;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TopCustomersQuery {
    /// How many customers, 1 to 100 (default 5).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// A customer and their tickets.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct TopCustomer {
    pub customer_id: i64,
    pub tickets: i64,
}

/// Customers with the most tickets, most first; ties by lower customer_id.
#[utoipa::path(get, path = "/analytics/top-customers", tag = "analytics",
    params(TopCustomersQuery),
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, body = [TopCustomer], description = "Top customers; ETag follows the data version",
            links(("GetTopCustomer" = (operation_id = "get_customer", parameters(("customer_id" = "$response.body#/0/customer_id")))))),
        NotModified))]
pub(crate) async fn top_customers(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<TopCustomersQuery>,
) -> Result<Response, ApiError> {
    let limit = parse_limit(query.limit.as_deref(), DEFAULT_TOP_LIMIT, MAX_TOP_LIMIT)?;
    let top = state.api.db.top_customers(limit).await?;
    Ok(etag::conditional(
        &headers,
        &etag::for_version("data", top.data_version),
        || {
            Json(
                top.customers
                    .into_iter()
                    .map(|t| TopCustomer {
                        customer_id: t.customer_id.get(),
                        tickets: t.tickets,
                    })
                    .collect::<Vec<_>>(),
            )
        },
    ))
}

#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 0 to 1000 (default 100); 0 gives the count alone.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 1000)]
    limit: Option<String>,
    /// `next_cursor` of the previous page; absent for the first page.
    #[param(value_type = Option<UnusedBarcodesCursor>)]
    cursor: Option<String>,
}

/// The unused barcodes: how many, and a page of them in code order.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct UnusedBarcodes {
    /// All unused barcodes (from the maintained aggregate).
    pub count: i64,
    pub barcodes: Vec<String>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(value_type = Option<UnusedBarcodesCursor>)]
    pub next_cursor: Option<String>,
}

/// Unused (unsold) barcodes: the count and one page of codes.
#[utoipa::path(get, path = "/analytics/unused-barcodes", tag = "analytics",
    params(PageQuery),
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, body = UnusedBarcodes),
        NotModified))]
pub(crate) async fn unused_barcodes(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    // limit=0: the count alone, straight from the aggregate.
    let limit = parse_limit_from(query.limit.as_deref(), 0, DEFAULT_PAGE, MAX_PAGE)?;
    let after = cursor::decode(Listing::UnusedBarcodes, query.cursor.as_deref())?;
    let unused = state
        .api
        .db
        .unused_barcodes(after.as_deref(), limit)
        .await?;
    let (count, version) = (unused.count, unused.data_version);
    let mut barcodes: Vec<String> = unused
        .barcodes
        .iter()
        .map(|barcode| barcode.as_str().to_owned())
        .collect();
    let next_cursor =
        page::next_cursor(&mut barcodes, limit, Listing::UnusedBarcodes, String::clone);
    Ok(etag::conditional(
        &headers,
        &etag::for_version("data", version),
        || {
            Json(UnusedBarcodes {
                count,
                barcodes,
                next_cursor,
            })
        },
    ))
}

/// Totals: orders, customers, tickets, unused barcodes, rejected rows and
/// the latest ingestion, from the maintained aggregates.
#[utoipa::path(get, path = "/analytics/summary", tag = "analytics",
    security(("bearer" = ["analytics:read"])),
    responses(
        (status = 200, body = Summary),
        NotModified))]
pub(crate) async fn summary(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let summary = state.api.db.summary(&state.customer_totals).await?;
    let tag = etag::for_version("data", summary.data_version);
    Ok(etag::conditional(&headers, &tag, || Json(summary)))
}
