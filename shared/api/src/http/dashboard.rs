//! The operators' dashboard: a page and its script and style, compiled into
//! the orders function and served under the API's base URL at `/dashboard`
//! (same origin as the API, so no CORS and no second sign-in). Nothing is
//! loaded from elsewhere: the page's Content-Security-Policy says so, and
//! the browser enforces it.
//!
//! The assets are the files in `shared/api/dashboard/` as written: no build
//! step, so `make up` on a fresh machine serves exactly what is committed.
//! The page holds no data: it signs in with a bearer token (handed over in
//! the URL fragment, which never reaches a server) and reads the API.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{etag, ApiError};

/// One file of the dashboard.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
    /// A strong ETag of the content, fixed at compile time.
    etag: &'static str,
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {{
        const BODY: &str = include_str!(concat!("../../dashboard/", $name));
        const TAG: [u8; 18] = content_tag(BODY.as_bytes());
        Asset {
            name: $name,
            content_type: $content_type,
            body: BODY,
            etag: match std::str::from_utf8(&TAG) {
                Ok(tag) => tag,
                Err(_) => panic!("an ETag is ASCII"),
            },
        }
    }};
}

/// The page (served at `/dashboard`) and the files it loads (at
/// `/dashboard/<name>`, which the page names relative to itself, so it works
/// under an API Gateway stage prefix too).
pub static PAGE: Asset = asset!("index.html", "text/html; charset=utf-8");
pub static FILES: [Asset; 2] = [
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
];

/// What the page may load and talk to: itself and the API (same origin).
/// `connect-src` also allows the presigned uploads' bucket, which is
/// another origin (see `upload_origin`).
fn content_security_policy(upload_origin: Option<&str>) -> String {
    let connect = match upload_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `/dashboard` and its files. `upload_origin` is the origin of the bucket
/// the page uploads to, when it is not the API's.
pub fn routes<S: Clone + Send + Sync + 'static>(upload_origin: Option<String>) -> Router<S> {
    let policy = HeaderValue::from_str(&content_security_policy(upload_origin.as_deref()))
        .expect("the policy is a valid header value");
    let page_policy = policy.clone();
    Router::new()
        .route(
            "/dashboard",
            get(move |headers: HeaderMap| {
                let policy = page_policy.clone();
                async move { serve(&PAGE, &headers, policy) }
            }),
        )
        .route(
            "/dashboard/{name}",
            get(move |Path(name): Path<String>, headers: HeaderMap| {
                let policy = policy.clone();
                async move {
                    match FILES.iter().find(|asset| asset.name == name) {
                        Some(asset) => serve(asset, &headers, policy),
                        None => ApiError::not_found(format!(
                            "the dashboard has no file {name:?}; open /dashboard"
                        ))
                        .into_response(),
                    }
                }
            }),
        )
}

/// The asset, or 304 when the browser holds this version. Browsers must
/// revalidate (a new deployment changes the files under the same names),
/// which costs a 304 while nothing changed.
fn serve(asset: &Asset, headers: &HeaderMap, policy: HeaderValue) -> Response {
    let mut response = if etag::matches(headers, asset.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_static(asset.etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `"` + 16 hex digits of the content's FNV-1a hash + `"`: changes when
/// the content does, which is all an ETag of a static file needs.
const fn content_tag(bytes: &[u8]) -> [u8; 18] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut tag = [b'"'; 18];
    let mut digit = 0;
    while digit < 16 {
        tag[1 + digit] = HEX[((hash >> (60 - 4 * digit)) & 0xf) as usize];
        digit += 1;
    }
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_differ_with_the_content() {
        let a = content_tag(b"a");
        let b = content_tag(b"b");
        assert_ne!(a, b);
        assert_eq!(a[0], b'"');
        assert_eq!(a[17], b'"');
        assert!(a[1..17].iter().all(u8::is_ascii_hexdigit));
    }

    #[test]
    fn the_policy_names_the_upload_origin_only_when_there_is_one() {
        assert!(content_security_policy(None).contains("connect-src 'self';"));
        assert!(content_security_policy(Some("http://127.0.0.1:4566"))
            .contains("connect-src 'self' http://127.0.0.1:4566;"));
    }
}
