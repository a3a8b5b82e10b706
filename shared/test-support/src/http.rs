//! The API in tests: tokens, requests sent through a router in process.

/// The HS256 secret the API tests sign and verify tokens with.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// The verifier the API routers get in tests.
pub fn test_authenticator() -> pipeline_api::http::auth::Authenticator {
    pipeline_api::http::auth::Authenticator::hs256(TEST_JWT_SECRET.as_bytes(), None, None)
}

/// A valid token for `scopes` (space-separated), signed with [`TEST_JWT_SECRET`].
pub fn test_token(scopes: &str) -> String {
    let scopes: Vec<&str> = scopes.split_whitespace().collect();
    pipeline_api::http::auth::issue_hs256(
        TEST_JWT_SECRET.as_bytes(),
        "test",
        &scopes,
        std::time::Duration::from_secs(600),
        None,
        None,
    )
}

/// A token with every scope.
pub fn test_token_all() -> String {
    test_token(&pipeline_api::http::auth::ALL_SCOPES.join(" "))
}

/// An HTTP answer in a test: status, headers and body.
#[derive(Debug)]
pub struct TestResponse {
    pub status: axum::http::StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: bytes::Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// Asserts the status, showing the body when it differs; returns the
    /// response for further checks.
    #[track_caller]
    pub fn expect_status(&self, status: axum::http::StatusCode) -> &Self {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

/// Sends `request` through `router` in process.
pub async fn send(
    router: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> TestResponse {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("routers are infallible");
    let (parts, body) = response.into_parts();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.expect("body").to_bytes(),
    }
}

/// A GET with a bearer token (or none).
pub fn get(uri: &str, token: Option<&str>) -> axum::http::Request<axum::body::Body> {
    let mut builder = axum::http::Request::get(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(axum::body::Body::empty()).expect("request")
}

/// A JSON POST with a bearer token.
pub fn post_json(
    uri: &str,
    token: &str,
    body: &serde_json::Value,
    idempotency_key: Option<&str>,
) -> axum::http::Request<axum::body::Body> {
    let mut builder = axum::http::Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(key) = idempotency_key {
        builder = builder.header("idempotency-key", key);
    }
    builder
        .body(axum::body::Body::from(body.to_string()))
        .expect("request")
}
