//! Domain types: parsed, never re-validated (ids and barcodes are newtypes
//! that can only hold valid values); [`outcome`]: what the rules decide
//! about a line, and how a report says it; [`rules`]: the rules themselves,
//! in plain Rust, which the load's SQL is tested against.

pub mod outcome;
pub mod rules;
use std::fmt;

/// Why a single field failed to parse. Carries enough to tell a user what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct FieldError {
    pub reason: String,
}

impl FieldError {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

fn parse_positive_id(raw: &str, what: &str) -> Result<i64, FieldError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(format!("{what} is empty")));
    }
    match trimmed.parse::<i64>() {
        Ok(value) if value > 0 => Ok(value),
        Ok(_) => Err(FieldError::new(format!(
            "{what} must be a positive integer, got {trimmed:?}"
        ))),
        Err(_) => Err(FieldError::new(format!(
            "{what} must be a positive integer of at most 19 digits, got {trimmed:?}"
        ))),
    }
}

/// The first order id of the range sales draw from (the `sale_order_ids`
/// sequence, migrations/V3): files may not name ids from here up, so a sale
/// never meets a file's order or a barcode waiting for one.
pub const FIRST_SALE_ORDER_ID: i64 = 9_000_000_000_000_000_000;

/// Accepts every valid id (customers).
fn any_id(value: i64) -> Result<i64, FieldError> {
    Ok(value)
}

/// Order ids in files stay below the sales range.
fn order_id_of_a_file(value: i64) -> Result<i64, FieldError> {
    if value >= FIRST_SALE_ORDER_ID {
        return Err(FieldError::new(format!(
            "order ids from {FIRST_SALE_ORDER_ID} up are reserved for sales made through the API, got {value}; \
             give the order an id below {FIRST_SALE_ORDER_ID}"
        )));
    }
    Ok(value)
}

macro_rules! positive_id {
    ($(#[$meta:meta])* $name:ident, $what:literal, $check:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(i64);

        impl $name {
            /// Parses an id written in an input file.
            pub fn parse(raw: &str) -> Result<Self, FieldError> {
                parse_positive_id(raw, $what).and_then($check).map(Self)
            }

            /// Wraps a value that came from the database, where the schema
            /// already guarantees it is positive.
            pub fn from_trusted(value: i64) -> Self {
                Self(value)
            }

            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

positive_id!(
    /// An order's id: a positive 64-bit integer, unique across all orders;
    /// in files below [`FIRST_SALE_ORDER_ID`].
    OrderId,
    "order_id",
    order_id_of_a_file
);
positive_id!(
    /// A customer's id: a positive 64-bit integer.
    CustomerId,
    "customer_id",
    any_id
);

/// A ticket barcode. Kept as text so leading zeros survive.
///
/// Accepted: 1 to [`Barcode::MAX_LEN`] characters from `A-Z a-z 0-9 - _ .`,
/// surrounding whitespace trimmed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Barcode(String);

impl Barcode {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new("barcode is empty"));
        }
        if trimmed.len() > Self::MAX_LEN {
            return Err(FieldError::new(format!(
                "barcode is {} characters long; at most {} are allowed",
                trimmed.len(),
                Self::MAX_LEN
            )));
        }
        if let Some(bad) = trimmed
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(FieldError::new(format!(
                "barcode contains {bad:?}; only A-Z, a-z, 0-9, '-', '_' and '.' are allowed"
            )));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn from_trusted(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Barcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One valid line of an orders file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub line: u64,
    pub order_id: OrderId,
    pub customer_id: CustomerId,
}

/// One valid line of a barcodes file; `order_id` is `None` for an unsold barcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarcodeRow {
    pub line: u64,
    pub barcode: Barcode,
    pub order_id: Option<OrderId>,
}

/// A customer and how many tickets (barcodes) their orders hold.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CustomerTickets {
    pub customer_id: CustomerId,
    pub tickets: i64,
}

/// An order that has at least one barcode, as written to `processed_orders.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedOrder {
    pub customer_id: CustomerId,
    pub order_id: OrderId,
    pub barcodes: Vec<Barcode>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_positive_integers_with_whitespace() {
        assert_eq!(OrderId::parse(" 42 ").unwrap().get(), 42);
        assert_eq!(CustomerId::parse("1").unwrap().get(), 1);
    }

    #[test]
    fn ids_reject_zero_negative_huge_and_text() {
        for bad in ["0", "-3", "99999999999999999999", "abc", "", "1.5"] {
            let err = OrderId::parse(bad).unwrap_err();
            assert!(err.reason.contains("order_id"), "{bad}: {err}");
        }
    }

    #[test]
    fn order_ids_of_the_sales_range_are_refused_in_files() {
        assert_eq!(
            OrderId::parse("8999999999999999999").unwrap().get(),
            FIRST_SALE_ORDER_ID - 1
        );
        for reserved in ["9000000000000000000", "9223372036854775807"] {
            let err = OrderId::parse(reserved).unwrap_err();
            assert!(
                err.reason.starts_with(
                    "order ids from 9000000000000000000 up are reserved for sales made through the API"
                ),
                "{err}"
            );
        }
        // Customers have no reserved range.
        assert!(CustomerId::parse("9223372036854775807").is_ok());
    }

    #[test]
    fn barcode_keeps_leading_zeros_and_rejects_bad_characters() {
        assert_eq!(Barcode::parse(" 00012 ").unwrap().as_str(), "00012");
        assert!(Barcode::parse("").is_err());
        assert!(Barcode::parse("12 34").is_err());
        assert!(Barcode::parse(&"1".repeat(65)).is_err());
        assert!(Barcode::parse(&"1".repeat(64)).is_ok());
    }
}
