//! Pagination cursors (http::cursor): any query parameter decodes to a key
//! or a 400 naming the `cursor` parameter, never a panic; a decoded cursor
//! belongs to exactly one listing and re-encodes to the same key; any key
//! encoded decodes back to itself.
#![no_main]

use axum::http::StatusCode;
use libfuzzer_sys::fuzz_target;
use pipeline_api::http::cursor::{decode, decode_id, encode, Listing};

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
        // A cursor made from a key leads back to that key, or is a 400 when
        // the text is no key of the listing's declared format.
        if !text.is_empty() {
            match decode(listing, Some(&encode(listing, &text))) {
                Ok(key) => assert_eq!(key.as_deref(), Some(&*text)),
                Err(error) => assert!(error.detail.starts_with("cursor:"), "{}", error.detail),
            }
        }
        // Integer ids are the keys of two listings; the unused listing's
        // keys are barcodes, which decode_id is not for.
        if listing == Listing::UnusedBarcodes {
            continue;
        }
        match decode_id(listing, Some(&text)) {
            Ok(Some(id)) => {
                // Keys past the largest id count as the largest.
                let key: u64 = decode(listing, Some(&text))
                    .unwrap()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(id, i64::try_from(key).unwrap_or(i64::MAX));
            }
            Ok(None) => assert!(text.is_empty()),
            Err(error) => assert!(error.detail.starts_with("cursor:"), "{}", error.detail),
        }
    }
    assert!(owners <= 1, "a cursor valid for {owners} listings");
});
