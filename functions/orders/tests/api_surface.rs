//! The API as a whole: both routers behind the auth matrix, the Lambda
//! payloads of every front door (REST v1, HTTP API v2, function URL) with
//! the stage-prefix trap, and the OpenAPI document against the routes.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use pipeline_api::analytics::AnalyticsState;
use pipeline_api::http::auth::{issue_hs256, issue_hs256_claims, Claims};
use pipeline_api::http::serve::normalize_path;
use pipeline_api::state::ApiState;
use pipeline_test_support::{
    send, test_authenticator, test_token, test_token_all, TestPipeline, TEST_JWT_SECRET,
};
use serde_json::{json, Value};

struct Api {
    orders: Router,
    analytics: Router,
}

impl Api {
    fn new(pipeline: &TestPipeline) -> Self {
        Self {
            orders: pipeline_api::orders::router(ApiState::new(
                pipeline.db.store(),
                test_authenticator(),
            )),
            analytics: pipeline_api::analytics::router(AnalyticsState::new(
                pipeline.db.store(),
                test_authenticator(),
                pipeline.bucket.client.clone(),
                pipeline.bucket.name.clone(),
            )),
        }
    }

    /// The router that serves `path` under the one base URL (as the
    /// `[workspace.metadata.lambda.watch.router]` map does).
    fn for_path(&self, path: &str) -> &Router {
        if path.starts_with("/analytics")
            || path.starts_with("/ingestions")
            || path.starts_with("/exports")
            || path.starts_with("/uploads")
            || path.starts_with("/problems")
        {
            &self.analytics
        } else {
            &self.orders
        }
    }
}

/// Every operation and the scope it needs (empty: public).
const PROTECTED: [(&str, &str, &str); 18] = [
    ("GET", "/orders", "orders:read"),
    ("POST", "/orders", "orders:write"),
    ("GET", "/orders/1", "orders:read"),
    ("GET", "/customers/10", "orders:read"),
    ("GET", "/customers/10/orders", "orders:read"),
    ("GET", "/analytics/top-customers", "analytics:read"),
    ("GET", "/analytics/unused-barcodes", "analytics:read"),
    ("GET", "/analytics/summary", "analytics:read"),
    ("GET", "/ingestions", "analytics:read"),
    ("GET", "/ingestions/1", "analytics:read"),
    ("GET", "/ingestions/1/report", "analytics:read"),
    ("GET", "/exports/processed-orders.csv", "analytics:read"),
    ("POST", "/uploads", "files:write"),
    ("GET", "/problems/orders-without-barcodes", "analytics:read"),
    ("GET", "/problems/waiting-barcodes", "analytics:read"),
    ("GET", "/problems/rejected-barcodes", "analytics:read"),
    ("GET", "/problems/order-conflicts", "analytics:read"),
    ("GET", "/health", ""),
];

fn request(method: &str, uri: &str, authorization: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    if method == "POST" {
        let body = match uri {
            "/uploads" => json!({"name": "orders.csv", "size": 10}),
            _ => json!({"customer_id": 10, "tickets": 1}),
        };
        builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    } else {
        builder.body(Body::empty()).unwrap()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn the_auth_matrix_holds_on_every_route() {
    let pipeline = TestPipeline::with_sample_data(5).await;
    let api = Api::new(&pipeline);
    let expired = issue_hs256_claims(
        TEST_JWT_SECRET.as_bytes(),
        &Claims {
            sub: Some("t".into()),
            exp: now() - 3600,
            scope: "orders:read orders:write analytics:read".into(),
            iss: None,
            aud: None,
            nbf: None,
            client_id: None,
        },
    );
    let wrong_key = issue_hs256(
        b"another-secret-another-secret-0123456",
        "t",
        &["orders:read", "orders:write", "analytics:read"],
        std::time::Duration::from_secs(60),
        None,
        None,
    );
    let unauthorized = [
        None,
        Some("Bearer".to_owned()),
        Some("Bearer not-a-jwt".to_owned()),
        Some(format!("Basic {}", test_token_all())),
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {wrong_key}")),
    ];
    let distinct: BTreeSet<_> = PROTECTED.iter().map(|(m, p, _)| (*m, *p)).collect();
    assert_eq!(distinct.len(), PROTECTED.len());
    for (method, path, scope) in PROTECTED {
        let router = api.for_path(path);
        if scope.is_empty() {
            let response = send(router, request(method, path, None)).await;
            assert_eq!(response.status, StatusCode::OK, "{method} {path} is public");
            continue;
        }
        for authorization in &unauthorized {
            let response = send(router, request(method, path, authorization.as_deref())).await;
            assert_eq!(
                response.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {authorization:?}"
            );
            assert_eq!(response.content_type(), "application/problem+json");
            assert!(
                response
                    .header("www-authenticate")
                    .unwrap()
                    .starts_with("Bearer realm="),
                "{method} {path}"
            );
        }
        let others: Vec<&str> = pipeline_api::http::auth::ALL_SCOPES
            .into_iter()
            .filter(|s| *s != scope)
            .collect();
        let response = send(
            router,
            request(
                method,
                path,
                Some(&format!("Bearer {}", test_token(&others.join(" ")))),
            ),
        )
        .await;
        assert_eq!(
            response.status,
            StatusCode::FORBIDDEN,
            "{method} {path} without {scope}"
        );
        assert!(response
            .header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope"));
        assert!(response.json()["detail"].as_str().unwrap().contains(scope));
        let response = send(
            router,
            request(method, path, Some(&format!("Bearer {}", test_token(scope)))),
        )
        .await;
        assert!(
            ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&response.status),
            "{method} {path} with {scope}: {}",
            response.status
        );
        assert!(
            !response.status.is_server_error(),
            "{method} {path}: {}",
            response.status
        );
    }
    for path in [
        "/openapi.json",
        "/docs",
        "/health",
        "/dashboard",
        "/dashboard/app.js",
    ] {
        assert_eq!(
            send(&api.orders, request("GET", path, None)).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
}

#[tokio::test]
async fn tokens_with_issuer_and_audience_are_checked_when_configured() {
    use pipeline_api::http::auth::Authenticator;
    let auth = Authenticator::hs256(
        TEST_JWT_SECRET.as_bytes(),
        Some("https://issuer.example"),
        Some("order-api"),
    );
    let good = issue_hs256(
        TEST_JWT_SECRET.as_bytes(),
        "t",
        &["orders:read"],
        std::time::Duration::from_secs(60),
        Some("https://issuer.example"),
        Some("order-api"),
    );
    let other_aud = issue_hs256(
        TEST_JWT_SECRET.as_bytes(),
        "t",
        &["orders:read"],
        std::time::Duration::from_secs(60),
        Some("https://issuer.example"),
        Some("other"),
    );
    let no_iss = test_token("orders:read");
    assert!(auth
        .authorize(Some(&format!("Bearer {good}")), "orders:read")
        .is_ok());
    for bad in [other_aud, no_iss] {
        let err = auth
            .authorize(Some(&format!("Bearer {bad}")), "orders:read")
            .unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
    }
}

/// A fixture from events/, with a fresh token in place of the placeholder.
fn fixture(name: &str) -> lambda_http::Request {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = text.replace("REPLACE_WITH_TOKEN", &test_token_all());
    lambda_http::request::from_str(&text)
        .unwrap_or_else(|e| panic!("{name} is not a Lambda HTTP event: {e}"))
}

async fn through_lambda(router: &Router, name: &str) -> pipeline_test_support::TestResponse {
    let request = normalize_path(fixture(name)).map(|body| Body::from(body.to_vec()));
    send(router, request).await
}

#[tokio::test]
async fn every_front_door_reaches_the_routes_without_its_stage() {
    let pipeline = TestPipeline::with_sample_data(5).await;
    let api = Api::new(&pipeline);

    // The trap: lambda_http alone puts the stage in front of the path.
    assert_eq!(
        fixture("apigw-v1-rest-get-order.json").uri().path(),
        "/prod/orders/1"
    );
    assert_eq!(
        fixture("apigw-v1-rest-list-orders.json").uri().path(),
        "/orders/orders"
    );
    assert_eq!(
        fixture("apigw-v2-http-get-order.json").uri().path(),
        "/prod/orders/1"
    );

    // REST API (v1), stage "prod".
    let response = through_lambda(&api.orders, "apigw-v1-rest-get-order.json").await;
    response.expect_status(StatusCode::OK);
    assert_eq!(response.json()["order_id"], 1);
    // The Lambda request id is the request id.
    assert_eq!(
        response.header("x-request-id"),
        Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
    );

    // REST API (v1) whose stage is named like the first path segment.
    let response = through_lambda(&api.orders, "apigw-v1-rest-list-orders.json").await;
    response.expect_status(StatusCode::OK);
    let body = response.json();
    assert_eq!(body["items"][0]["order_id"], 1);
    assert!(body["next_cursor"].is_string());

    // HTTP API (v2), named stage: rawPath carries it.
    let response = through_lambda(&api.orders, "apigw-v2-http-get-order.json").await;
    response.expect_status(StatusCode::OK);
    assert_eq!(response.json()["order_id"], 1);

    // HTTP API (v2), $default stage, to the analytics function.
    let response = through_lambda(&api.analytics, "apigw-v2-http-default-stage-summary.json").await;
    response.expect_status(StatusCode::OK);
    assert_eq!(response.json()["orders"], 8);

    // Function URL, a POST with a body.
    let response = through_lambda(&api.orders, "function-url-post-order.json").await;
    response.expect_status(StatusCode::CREATED);
    assert_eq!(response.json()["customer_id"], 15);
}

/// Every `$ref` in the document points at a schema it defines.
fn check_refs(value: &Value, doc: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                let pointer = reference.strip_prefix('#').expect("local refs only");
                assert!(doc.pointer(pointer).is_some(), "dangling {reference}");
            }
            map.values().for_each(|v| check_refs(v, doc));
        }
        Value::Array(items) => items.iter().for_each(|v| check_refs(v, doc)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_is_valid_and_lists_exactly_the_served_routes() {
    let pipeline = TestPipeline::with_sample_data(5).await;
    let api = Api::new(&pipeline);
    let response = send(&api.orders, request("GET", "/openapi.json", None)).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.content_type(), "application/json");
    let doc = response.json();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    check_refs(&doc, &doc);

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            // Behind a token means reading the database: it may be busy.
            if operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
            {
                let busy = &operation["responses"]["503"];
                let busy = match busy["$ref"].as_str() {
                    Some(reference) => doc.pointer(reference.strip_prefix('#').unwrap()).unwrap(),
                    None => busy,
                };
                assert!(
                    busy["headers"]["Retry-After"].is_object(),
                    "{method} {path} documents its 503 with Retry-After"
                );
            }
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            // Path template parameters are declared.
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                let declared = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == name && p["in"] == "path");
                assert!(declared, "{method} {path}: {{{name}}} not declared");
            }
            // Protected operations name their scope; public ones none.
            let public = ["/health"].contains(&path.as_str());
            assert_eq!(
                operation.get("security").is_none(),
                public,
                "{method} {path}"
            );
        }
    }
    let expected: BTreeSet<(String, String)> = [
        ("GET", "/health"),
        ("GET", "/orders"),
        ("POST", "/orders"),
        ("GET", "/orders/{order_id}"),
        ("GET", "/customers/{customer_id}"),
        ("GET", "/customers/{customer_id}/orders"),
        ("GET", "/analytics/top-customers"),
        ("GET", "/analytics/unused-barcodes"),
        ("GET", "/analytics/summary"),
        ("GET", "/ingestions"),
        ("GET", "/ingestions/{id}"),
        ("GET", "/ingestions/{id}/report"),
        ("GET", "/exports/processed-orders.csv"),
        ("POST", "/uploads"),
        ("GET", "/problems/orders-without-barcodes"),
        ("GET", "/problems/waiting-barcodes"),
        ("GET", "/problems/rejected-barcodes"),
        ("GET", "/problems/order-conflicts"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(documented, expected);

    // Every documented operation is served (not the unknown-route 404, not 405).
    let token = format!("Bearer {}", test_token_all());
    for (method, path) in &documented {
        let concrete = path
            .replace("{order_id}", "1")
            .replace("{customer_id}", "10")
            .replace("{id}", "1");
        let response = send(
            api.for_path(&concrete),
            request(method, &concrete, Some(&token)),
        )
        .await;
        assert_ne!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        if response.status == StatusCode::NOT_FOUND {
            let detail = response.json()["detail"].as_str().unwrap().to_owned();
            assert!(
                !detail.starts_with("no route"),
                "{method} {path} is documented but not served"
            );
        }
    }
    // And a route that is not documented is not served.
    for (method, path) in [
        (Method::GET, "/customers"),
        (Method::PUT, "/orders/1"),
        (Method::GET, "/analytics"),
    ] {
        let response = send(
            api.for_path(path),
            request(method.as_str(), path, Some(&token)),
        )
        .await;
        assert!(
            [StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&response.status),
            "{method} {path}"
        );
        assert_eq!(response.content_type(), "application/problem+json");
    }

    // The docs page is self-contained HTML naming every operation.
    let page = send(&api.orders, request("GET", "/docs", None)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.content_type().starts_with("text/html"));
    let html = String::from_utf8(page.body.to_vec()).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("<script"),
        "the docs page loads nothing from elsewhere"
    );
    for (_, path) in &documented {
        assert!(
            html.contains(&format!("<code>{path}</code>")),
            "{path} missing from /docs"
        );
    }
}

#[tokio::test]
async fn a_sale_shows_in_the_next_export() {
    let pipeline = TestPipeline::with_sample_data(3).await;
    let api = Api::new(&pipeline);
    let token = format!("Bearer {}", test_token_all());
    let before = send(
        &api.analytics,
        request("GET", "/exports/processed-orders.csv", Some(&token)),
    )
    .await;
    assert_eq!(before.status, StatusCode::FOUND);
    let sale = send(&api.orders, request("POST", "/orders", Some(&token))).await;
    assert_eq!(sale.status, StatusCode::CREATED);
    let order_id = sale.json()["order_id"].as_i64().unwrap();
    let after = send(
        &api.analytics,
        request("GET", "/exports/processed-orders.csv", Some(&token)),
    )
    .await;
    assert_eq!(after.status, StatusCode::FOUND);
    assert_ne!(
        after.header("etag"),
        before.header("etag"),
        "a sale changes the export's ETag"
    );
    let csv = reqwest::get(after.header("location").unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // request() posts {"customer_id": 10, "tickets": 1}.
    assert!(
        csv.lines()
            .any(|l| l.starts_with(&format!("10,{order_id},"))),
        "{csv}"
    );
}

/// The routers of both functions over a database that refuses them.
async fn routers_over(database_url: &str) -> [Router; 2] {
    use order_pipeline::config::DatabaseSettings;
    let settings = DatabaseSettings {
        url: database_url.to_owned(),
        pool_size: 1,
        connect_timeout: std::time::Duration::from_secs(5),
    };
    let store = || {
        order_pipeline::postgres::PgStore::new(
            order_pipeline::postgres::pool::connect_pool(&settings).unwrap(),
        )
    };
    let s3 = order_pipeline::storage::s3_client(&pipeline_test_support::localstack_config().await);
    [
        pipeline_api::orders::router(ApiState::new(store(), test_authenticator())),
        pipeline_api::analytics::router(AnalyticsState::new(
            store(),
            test_authenticator(),
            s3,
            "no-bucket".to_owned(),
        )),
    ]
}

#[tokio::test]
async fn health_says_unavailable_and_nothing_more_when_the_database_refuses() {
    let logs = pipeline_test_support::LogCapture::default();
    let _capture = logs.install("info");
    // A role the server does not know (its error names it) and a port
    // nothing listens on.
    let refusals = [
        (
            "postgres://leaky_role_x7@127.0.0.1:54329/leaky_db_x7",
            "leaky_role_x7",
        ),
        (
            "postgres://leaky_role_x8@127.0.0.1:1/leaky_db_x8",
            "Connection refused",
        ),
    ];
    for (url, logged) in refusals {
        for router in routers_over(url).await {
            let response = send(&router, request("GET", "/health", None)).await;
            assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{url}");
            assert_eq!(response.content_type(), "application/problem+json");
            let body = String::from_utf8_lossy(&response.body).into_owned();
            for leak in [
                "leaky",
                "role",
                "127.0.0.1",
                "54329",
                ":1",
                "pg_hba",
                "FATAL",
                "refused",
                "postgres",
            ] {
                assert!(
                    !body.contains(leak),
                    "{url}: the answer shows {leak:?}: {body}"
                );
            }
            assert_eq!(
                response.json()["detail"],
                "the database is unavailable; try again shortly"
            );
        }
        assert!(
            logs.text().contains(logged),
            "the cause ({logged}) is in the log: {}",
            logs.text()
        );
    }
}
