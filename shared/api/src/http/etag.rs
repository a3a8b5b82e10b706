//! Conditional GETs: an `ETag` derived from a data version, and 304 when
//! the client's `If-None-Match` already names it.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Answers that change only with the data: clients (never shared caches,
/// the answers need a token) may keep them but must revalidate each time,
/// which costs a 304 while nothing changed.
pub const REVALIDATE: &str = "private, no-cache";

/// The document's 304 answer of a route that honours `If-None-Match`.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 304,
    description = "Unchanged since the ETag in If-None-Match"
)]
pub struct NotModified;

/// A strong entity tag for a data version (`kind` keeps tags of different
/// versions apart, e.g. data vs output versions).
pub fn for_version(kind: &str, version: i64) -> String {
    format!("\"{kind}-{version}\"")
}

/// True when `If-None-Match` lists `etag` (or is `*`).
pub fn matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

/// 304 when the client holds `etag`, otherwise `fresh()`; both carry the
/// ETag and Cache-Control.
pub fn conditional<R: IntoResponse>(
    headers: &HeaderMap,
    etag: &str,
    fresh: impl FnOnce() -> R,
) -> Response {
    let mut response = if matches(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        fresh().into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists() {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, "\"d-1\", W/\"d-2\"".parse().unwrap());
        assert!(matches(&headers, "\"d-2\""));
        assert!(matches(&headers, "\"d-1\""));
        assert!(!matches(&headers, "\"d-3\""));
    }
}
