//! The whole API's OpenAPI 3.1 document: the orders function's routes and
//! the analytics function's, as API Gateway serves them under one base URL.

use crate::http::docs;

/// The document `GET /openapi.json` serves.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = crate::orders::api().split_for_parts().1;
    doc.merge(crate::analytics::api().split_for_parts().1);
    docs::complete(
        doc,
        "Order pipeline API",
        "Orders, customers, ticket sales, analytics, the ingest ledger, the problems across \
         all files, uploads and exports. \
         JSON, snake_case; errors are application/problem+json (RFC 9457).",
    )
}
