//! Opaque keyset-pagination cursors: `base64url("<listing>:<last key>")`.
//! The listing tag makes a cursor from one listing useless on another, and
//! clients are told to treat cursors as opaque so the format can change.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::problem::ApiError;

/// Which listing a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Orders,
    UnusedBarcodes,
    Ingestions,
}

impl Listing {
    fn tag(self) -> &'static str {
        match self {
            Listing::Orders => "orders",
            Listing::UnusedBarcodes => "unused",
            Listing::Ingestions => "ingestions",
        }
    }
}

/// Encodes the last key of a page as the cursor of the next page.
pub fn encode(listing: Listing, last_key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{last_key}", listing.tag()))
}

/// Decodes `cursor` (the query parameter) into the key after which the page
/// starts; `None` when absent or empty (the first page).
pub fn decode(listing: Listing, cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(raw) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::bad_parameter(
            "cursor",
            "not a cursor of this listing; pass back the next_cursor of the previous page unchanged",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (tag, key) = text.split_once(':').ok_or_else(invalid)?;
    if tag != listing.tag() || key.is_empty() {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

/// Decodes a cursor whose key is a positive integer id.
pub fn decode_id(listing: Listing, cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    match decode(listing, cursor)? {
        None => Ok(None),
        Some(key) => key.parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_parameter(
                "cursor",
                "not a cursor of this listing; pass back next_cursor unchanged",
            )
        }),
    }
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
        let err = decode_id(Listing::Orders, Some(&encode(Listing::Orders, "x"))).unwrap_err();
        assert!(err.detail.starts_with("cursor:"));
    }
}
