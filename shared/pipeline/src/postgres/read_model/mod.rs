//! The read queries: what the API answers and the reports show. Request
//! paths read indexes and the maintained aggregates (customer_tickets,
//! pipeline_stats); none scans the barcode table. Each returns named
//! structs with the domain's types, which serialise as the API answers
//! and, with the `openapi` feature, carry the API's schemas.

/// `timestamptz` as RFC 3339 UTC text, so no date crate is needed.
macro_rules! ts {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
    };
}

pub mod analytics;
pub mod customers;
pub mod ingestions;
pub mod orders;
pub mod problems;
