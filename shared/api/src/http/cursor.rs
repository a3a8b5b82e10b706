//! Keyset-pagination cursors: `<listing>:<last key>`, e.g. `orders:1042`.
//! The listing tag makes a cursor from one listing useless on another. The
//! OpenAPI document declares each listing's format (a pattern, from
//! [`Listing::pattern`]), and every value of that format is served: a key
//! past the last row gives an empty page, not an error.

use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

use super::problem::ApiError;
use order_pipeline::domain::Barcode;

/// Digits in the longest integer key (`i64::MAX` has 19).
const MAX_ID_DIGITS: usize = 19;

/// Which listing a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Orders,
    UnusedBarcodes,
    Ingestions,
    OrdersWithoutBarcodes,
    WaitingBarcodes,
    RejectedBarcodes,
    OrderConflicts,
}

impl Listing {
    fn tag(self) -> &'static str {
        match self {
            Listing::Orders => "orders",
            Listing::UnusedBarcodes => "unused",
            Listing::Ingestions => "ingestions",
            Listing::OrdersWithoutBarcodes => "no-barcodes",
            Listing::WaitingBarcodes => "waiting",
            Listing::RejectedBarcodes => "rejected-barcodes",
            Listing::OrderConflicts => "conflicts",
        }
    }

    /// The JSON Schema pattern of this listing's cursors, as the document
    /// declares it; [`decode`] accepts exactly these.
    pub fn pattern(self) -> String {
        match self {
            Listing::Orders
            | Listing::Ingestions
            | Listing::OrdersWithoutBarcodes
            | Listing::RejectedBarcodes
            | Listing::OrderConflicts => {
                format!("^{}:[0-9]{{1,{MAX_ID_DIGITS}}}$", self.tag())
            }
            Listing::UnusedBarcodes | Listing::WaitingBarcodes => {
                format!("^{}:[A-Za-z0-9._-]{{1,{}}}$", self.tag(), Barcode::MAX_LEN)
            }
        }
    }

    fn is_key(self, key: &str) -> bool {
        match self {
            Listing::Orders
            | Listing::Ingestions
            | Listing::OrdersWithoutBarcodes
            | Listing::RejectedBarcodes
            | Listing::OrderConflicts => {
                (1..=MAX_ID_DIGITS).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_digit())
            }
            // A barcode as ingest accepts it, without the trimming.
            Listing::UnusedBarcodes | Listing::WaitingBarcodes => {
                Barcode::parse(key).is_ok_and(|b| b.as_str() == key)
            }
        }
    }

    fn schema(self) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(self.pattern()))
            .description(Some(
                "The `next_cursor` of the previous page: `<listing>:<last key>`",
            ))
            .into()
    }
}

/// Encodes the last key of a page as the cursor of the next page.
pub fn encode(listing: Listing, last_key: &str) -> String {
    format!("{}:{last_key}", listing.tag())
}

/// Decodes `cursor` (the query parameter) into the key after which the page
/// starts; `None` when absent (the first page).
pub fn decode(listing: Listing, cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(raw) = cursor else {
        return Ok(None);
    };
    match raw.strip_prefix(listing.tag()).and_then(|r| r.strip_prefix(':')) {
        Some(key) if listing.is_key(key) => Ok(Some(key.to_owned())),
        _ => Err(ApiError::bad_parameter(
            "cursor",
            format!(
                "{raw:?} is not a cursor of this listing (pattern {}); pass back the next_cursor of the previous page",
                listing.pattern()
            ),
        )),
    }
}

/// Decodes a cursor whose key is an integer id. Keys beyond the largest id
/// (up to 19 digits) count as the largest id: past every row.
pub fn decode_id(listing: Listing, cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    Ok(decode(listing, cursor)?.map(|key| {
        // At most 19 digits: always a u64.
        let key: u64 = key.parse().unwrap_or(u64::MAX);
        i64::try_from(key).unwrap_or(i64::MAX)
    }))
}

/// The document's schemas of the cursors, one per listing.
macro_rules! cursor_schema {
    ($($(#[$doc:meta])* $name:ident = $listing:expr;)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $listing.schema()
            }
        }
        impl utoipa::ToSchema for $name {}
    )*};
}

cursor_schema! {
    /// A cursor of `GET /orders` and `GET /customers/{customer_id}/orders`.
    OrdersCursor = Listing::Orders;
    /// A cursor of `GET /analytics/unused-barcodes`.
    UnusedBarcodesCursor = Listing::UnusedBarcodes;
    /// A cursor of `GET /ingestions`.
    IngestionsCursor = Listing::Ingestions;
    /// A cursor of `GET /problems/orders-without-barcodes`.
    OrdersWithoutBarcodesCursor = Listing::OrdersWithoutBarcodes;
    /// A cursor of `GET /problems/waiting-barcodes`.
    WaitingBarcodesCursor = Listing::WaitingBarcodes;
    /// A cursor of `GET /problems/rejected-barcodes`.
    RejectedBarcodesCursor = Listing::RejectedBarcodes;
    /// A cursor of `GET /problems/order-conflicts`.
    OrderConflictsCursor = Listing::OrderConflicts;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_foreign_cursors() {
        let cursor = encode(Listing::Orders, "42");
        assert_eq!(decode_id(Listing::Orders, Some(&cursor)).unwrap(), Some(42));
        assert_eq!(decode(Listing::Orders, None).unwrap(), None);
        assert!(decode(Listing::Ingestions, Some(&cursor)).is_err());
        assert!(decode(Listing::Orders, Some("not base64!")).is_err());
        assert!(decode(Listing::Orders, Some("")).is_err());
        let err = decode_id(Listing::Orders, Some(&encode(Listing::Orders, "x"))).unwrap_err();
        assert!(err.detail.starts_with("cursor:"));
    }

    #[test]
    fn keys_past_the_largest_id_count_as_the_largest() {
        let far = encode(Listing::Orders, "9999999999999999999");
        assert_eq!(
            decode_id(Listing::Orders, Some(&far)).unwrap(),
            Some(i64::MAX)
        );
        let too_long = encode(Listing::Orders, "99999999999999999999");
        assert!(decode_id(Listing::Orders, Some(&too_long)).is_err());
    }
}
