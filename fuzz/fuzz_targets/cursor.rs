//! Pagination cursors (http::cursor): any query parameter decodes to a key
//! or a 400 naming the `cursor` parameter, never a panic; a decoded cursor
//! belongs to exactly one listing and re-encodes to the same key; any key
//! encoded decodes back to itself.
#![no_main]

use axum::http::StatusCode;
use libfuzzer_sys::fuzz_target;
use order_pipeline::http::cursor::{decode, decode_id, encode, Listing};

const LISTINGS: [Listing; 3] = [
    Listing::Orders,
    Listing::UnusedBarcodes,
    Listing::Ingestions,
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut owners = 0;
    for listing in LISTINGS {
        match decode(listing, Some(&text)) {
            Ok(Some(key)) => {
                owners += 1;
                assert!(!key.is_empty());
                let again = encode(listing, &key);
                assert_eq!(decode(listing, Some(&again)).unwrap(), Some(key));
            }
            Ok(None) => assert!(text.is_empty()),
            Err(error) => {
                assert_eq!(error.status, StatusCode::BAD_REQUEST);
                assert!(error.detail.starts_with("cursor:"), "{}", error.detail);
            }
        }
        match decode_id(listing, Some(&text)) {
            Ok(Some(id)) => {
                let key = decode(listing, Some(&text)).unwrap().unwrap();
                assert_eq!(key.parse::<i64>(), Ok(id));
            }
            Ok(None) => assert!(text.is_empty()),
            Err(error) => assert!(error.detail.starts_with("cursor:"), "{}", error.detail),
        }
        // Whatever a page ends on, its cursor leads back to it.
        if !text.is_empty() {
            assert_eq!(
                decode(listing, Some(&encode(listing, &text)))
                    .unwrap()
                    .as_deref(),
                Some(&*text)
            );
        }
    }
    assert!(owners <= 1, "a cursor valid for {owners} listings");
});
