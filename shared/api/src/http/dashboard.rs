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

use std::sync::Arc;

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

/// Where the page may send requests besides the API, and how it signs in
/// with an OpenID Connect provider; from the environment at a cold start.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DashboardConfig {
    /// The origin of the bucket the page uploads to, when not the API's.
    #[serde(skip)]
    pub upload_origin: Option<String>,
    /// The provider's authorization-code sign-in, when configured.
    pub oidc: Option<OidcClient>,
}

/// The dashboard as a public OAuth client of the provider that issues the
/// API's tokens: authorization code with PKCE (no client secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OidcClient {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub client_id: String,
    /// Space-separated scopes to ask for.
    pub scope: String,
}

impl DashboardConfig {
    /// `UPLOAD_ORIGIN` (or LocalStack's), and the sign-in from
    /// `DASHBOARD_OIDC_AUTHORIZATION_ENDPOINT`, `DASHBOARD_OIDC_TOKEN_ENDPOINT`
    /// and `DASHBOARD_OIDC_CLIENT_ID` (all three, or none), with
    /// `DASHBOARD_OIDC_SCOPES` (default: openid and every API scope, with
    /// `JWT_SCOPE_PREFIX`).
    pub fn from_env() -> Self {
        let set = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let oidc = match (
            set("DASHBOARD_OIDC_AUTHORIZATION_ENDPOINT"),
            set("DASHBOARD_OIDC_TOKEN_ENDPOINT"),
            set("DASHBOARD_OIDC_CLIENT_ID"),
        ) {
            (Some(authorization_endpoint), Some(token_endpoint), Some(client_id)) => {
                Some(OidcClient {
                    authorization_endpoint,
                    token_endpoint,
                    client_id,
                    scope: set("DASHBOARD_OIDC_SCOPES").unwrap_or_else(|| {
                        let prefix = set("JWT_SCOPE_PREFIX").unwrap_or_default();
                        let scopes = super::auth::ALL_SCOPES.map(|s| format!("{prefix}{s}"));
                        format!("openid {}", scopes.join(" "))
                    }),
                })
            }
            _ => None,
        };
        Self {
            upload_origin: order_pipeline::config::upload_origin_from_env(),
            oidc,
        }
    }

    /// What the page may load and talk to: itself and the API (same
    /// origin), the bucket it uploads to, and the provider's token endpoint
    /// (the sign-in's one cross-origin request; the authorization endpoint
    /// is a navigation).
    fn content_security_policy(&self) -> String {
        let mut connect = vec!["'self'".to_owned()];
        connect.extend(self.upload_origin.clone());
        connect.extend(
            self.oidc
                .as_ref()
                .and_then(|oidc| order_pipeline::config::origin_of(&oidc.token_endpoint)),
        );
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src {}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            connect.join(" ")
        )
    }
}

/// `/dashboard`, its files, and `/dashboard/config.json` (how to sign in).
pub fn routes<S: Clone + Send + Sync + 'static>(config: DashboardConfig) -> Router<S> {
    let policy = HeaderValue::from_str(&config.content_security_policy())
        .expect("the policy is a valid header value");
    let page_policy = policy.clone();
    let config_json: Arc<str> = serde_json::to_string(&config)
        .expect("the config is JSON")
        .into();
    Router::new()
        .route(
            "/dashboard",
            get(move |headers: HeaderMap| {
                let policy = page_policy.clone();
                async move { serve(&PAGE, &headers, policy) }
            }),
        )
        .route(
            "/dashboard/config.json",
            get(move || {
                let body = config_json.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/json"),
                            (header::CACHE_CONTROL, "no-cache"),
                        ],
                        body.to_string(),
                    )
                        .into_response()
                }
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
    fn the_policy_names_the_upload_origin_and_token_endpoint_only_when_there_are_some() {
        let bare = DashboardConfig::default();
        assert!(bare
            .content_security_policy()
            .contains("connect-src 'self';"));
        let full = DashboardConfig {
            upload_origin: Some("http://127.0.0.1:4566".into()),
            oidc: Some(OidcClient {
                authorization_endpoint: "https://auth.example.com/oauth2/authorize".into(),
                token_endpoint: "https://auth.example.com/oauth2/token".into(),
                client_id: "dashboard".into(),
                scope: "openid".into(),
            }),
        };
        assert!(full
            .content_security_policy()
            .contains("connect-src 'self' http://127.0.0.1:4566 https://auth.example.com;"));
    }
}
