//! Page limits of the listings, and the one way every keyset listing
//! (orders, a customer's orders, unused barcodes, ingestions) ends a page.

use crate::http::cursor::{self, Listing};

/// Default and bound of `limit` on the listings.
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;
/// Default and bounds of `limit` on `/analytics/top-customers`.
pub const DEFAULT_TOP_LIMIT: i64 = 5;
pub const MAX_TOP_LIMIT: i64 = 100;

/// The store fetches `limit + 1` rows: trims the extra one and, when there
/// was one, returns the cursor of the page's last key (`key` of the last
/// item) for the next page.
pub fn next_cursor<T>(
    items: &mut Vec<T>,
    limit: i64,
    listing: Listing,
    key: impl FnOnce(&T) -> String,
) -> Option<String> {
    if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|last| cursor::encode(listing, &key(last)))
    } else {
        None
    }
}
