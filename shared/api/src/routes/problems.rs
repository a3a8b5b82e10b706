//! What is wrong now, across all files: orders without barcodes, barcodes
//! waiting for an order not known yet, barcodes rejected as copies (with
//! where the copy and the winner are), and orders claimed by another
//! customer. Each is a count and a keyset page, with an ETag of the data
//! version.

use crate::analytics::AnalyticsState;
use crate::http::auth::{AnalyticsRead, Authorized};
use crate::http::cursor::{
    self, Listing, OrderConflictsCursor, OrdersWithoutBarcodesCursor, RejectedBarcodesCursor,
    WaitingBarcodesCursor,
};
use crate::http::etag::{self, NotModified};
use crate::http::extract::{parse_limit_from, ApiQuery};
use crate::http::ApiError;
use crate::page::{self, DEFAULT_PAGE, MAX_PAGE};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use order_pipeline::postgres::read_model::problems::{
    OrderConflict, OrderWithoutBarcodes, ProblemPage, RejectedBarcode, WaitingBarcode,
};
use utoipa::{IntoParams, ToSchema};

/// A problem list's answer (`$name`) and query (`$query`: `limit` and a
/// `cursor` of the list's own format).
macro_rules! problem_list {
    ($(#[$doc:meta])* $name:ident of $item:ty, $query:ident, cursor $cursor:ty) => {
        #[derive(Debug, serde::Deserialize, IntoParams)]
        #[into_params(parameter_in = Query)]
        pub struct $query {
            /// Page size, 0 to 1000 (default 100); 0 gives the count alone.
            #[param(value_type = Option<i64>, minimum = 0, maximum = 1000)]
            limit: Option<String>,
            /// `next_cursor` of the previous page; absent for the first page.
            #[param(value_type = Option<$cursor>)]
            cursor: Option<String>,
        }

        $(#[$doc])*
        #[derive(Debug, serde::Serialize, ToSchema)]
        pub struct $name {
            /// How many there are now.
            pub count: i64,
            pub items: Vec<$item>,
            /// Pass as `cursor` for the next page; null on the last page.
            #[schema(value_type = Option<$cursor>)]
            pub next_cursor: Option<String>,
        }
    };
}

problem_list!(
    /// Orders stored without any barcode (left out of processed_orders.csv).
    OrdersWithoutBarcodesPage of OrderWithoutBarcodes, NoBarcodesQuery, cursor OrdersWithoutBarcodesCursor);
problem_list!(
    /// Barcodes stored for orders no file has brought yet.
    WaitingBarcodesPage of WaitingBarcode, WaitingQuery, cursor WaitingBarcodesCursor);
problem_list!(
    /// Barcodes rejected as later copies.
    RejectedBarcodesPage of RejectedBarcode, RejectedBarcodesQuery, cursor RejectedBarcodesCursor);
problem_list!(
    /// Orders a file gave to another customer.
    OrderConflictsPage of OrderConflict, ConflictsQuery, cursor OrderConflictsCursor);

/// The page answered with the data version's ETag, or 304.
fn answer<T, P: serde::Serialize>(
    headers: &HeaderMap,
    found: ProblemPage<T>,
    limit: i64,
    listing: Listing,
    key: impl FnOnce(&T) -> String,
    page: impl FnOnce(i64, Vec<T>, Option<String>) -> P,
) -> Response {
    let ProblemPage {
        count,
        data_version,
        mut items,
    } = found;
    let next_cursor = page::next_cursor(&mut items, limit, listing, key);
    etag::conditional(headers, &etag::for_version("data", data_version), || {
        Json(page(count, items, next_cursor))
    })
}

fn limit_of(raw: Option<&str>) -> Result<i64, ApiError> {
    parse_limit_from(raw, 0, DEFAULT_PAGE, MAX_PAGE)
}

/// Orders without barcodes, by order_id: reported by their orders file,
/// they stay here until a barcodes file brings their barcodes.
#[utoipa::path(get, path = "/problems/orders-without-barcodes", tag = "problems",
    params(NoBarcodesQuery),
    security(("bearer" = ["analytics:read"])),
    responses((status = 200, body = OrdersWithoutBarcodesPage), NotModified))]
pub(crate) async fn orders_without_barcodes(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<NoBarcodesQuery>,
) -> Result<Response, ApiError> {
    let limit = limit_of(query.limit.as_deref())?;
    let after = cursor::decode_id(Listing::OrdersWithoutBarcodes, query.cursor.as_deref())?;
    let found = state
        .api
        .db
        .orders_without_barcodes_page(&state.problem_counts, after.unwrap_or(0), limit)
        .await?;
    Ok(answer(
        &headers,
        found,
        limit,
        Listing::OrdersWithoutBarcodes,
        |o| o.order_id.to_string(),
        |count, items, next_cursor| OrdersWithoutBarcodesPage {
            count,
            items,
            next_cursor,
        },
    ))
}

/// Barcodes waiting for their order, in code order: they count as tickets
/// once a file brings the order.
#[utoipa::path(get, path = "/problems/waiting-barcodes", tag = "problems",
    params(WaitingQuery),
    security(("bearer" = ["analytics:read"])),
    responses((status = 200, body = WaitingBarcodesPage), NotModified))]
pub(crate) async fn waiting_barcodes(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<WaitingQuery>,
) -> Result<Response, ApiError> {
    let limit = limit_of(query.limit.as_deref())?;
    let after = cursor::decode(Listing::WaitingBarcodes, query.cursor.as_deref())?;
    let found = state
        .api
        .db
        .waiting_barcodes(
            &state.customer_totals,
            after.as_deref().unwrap_or(""),
            limit,
        )
        .await?;
    Ok(answer(
        &headers,
        found,
        limit,
        Listing::WaitingBarcodes,
        |b| b.barcode.as_str().to_owned(),
        |count, items, next_cursor| WaitingBarcodesPage {
            count,
            items,
            next_cursor,
        },
    ))
}

/// Barcodes rejected as later copies of one already seen (earlier in the
/// same file, or stored), oldest first, each with the file and line of the
/// copy and of the winner.
#[utoipa::path(get, path = "/problems/rejected-barcodes", tag = "problems",
    params(RejectedBarcodesQuery),
    security(("bearer" = ["analytics:read"])),
    responses((status = 200, body = RejectedBarcodesPage), NotModified))]
pub(crate) async fn rejected_barcodes(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<RejectedBarcodesQuery>,
) -> Result<Response, ApiError> {
    let limit = limit_of(query.limit.as_deref())?;
    let after = cursor::decode_id(Listing::RejectedBarcodes, query.cursor.as_deref())?;
    let found = state
        .api
        .db
        .rejected_barcodes(after.unwrap_or(0), limit)
        .await?;
    Ok(answer(
        &headers,
        found,
        limit,
        Listing::RejectedBarcodes,
        |r| r.id.to_string(),
        |count, items, next_cursor| RejectedBarcodesPage {
            count,
            items,
            next_cursor,
        },
    ))
}

/// Orders rejected because another customer holds them (earlier in the
/// same file, or stored), oldest first.
#[utoipa::path(get, path = "/problems/order-conflicts", tag = "problems",
    params(ConflictsQuery),
    security(("bearer" = ["analytics:read"])),
    responses((status = 200, body = OrderConflictsPage), NotModified))]
pub(crate) async fn order_conflicts(
    _auth: Authorized<AnalyticsRead>,
    State(state): State<AnalyticsState>,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ConflictsQuery>,
) -> Result<Response, ApiError> {
    let limit = limit_of(query.limit.as_deref())?;
    let after = cursor::decode_id(Listing::OrderConflicts, query.cursor.as_deref())?;
    let found = state
        .api
        .db
        .order_conflicts(after.unwrap_or(0), limit)
        .await?;
    Ok(answer(
        &headers,
        found,
        limit,
        Listing::OrderConflicts,
        |c| c.id.to_string(),
        |count, items, next_cursor| OrderConflictsPage {
            count,
            items,
            next_cursor,
        },
    ))
}
