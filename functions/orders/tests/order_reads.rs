//! The orders read routes (orders, customers, paging) and how every route
//! refuses a bad request, against PostgreSQL holding the sample data,
//! loaded through the real ingest path (LocalStack S3 -> ingest ->
//! PostgreSQL).

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use pipeline_api::state::ApiState;
use pipeline_test_support::{
    get, send, test_authenticator, test_token, test_token_all, TestPipeline,
};
use serde_json::{json, Value};

fn router(pipeline: &TestPipeline) -> Router {
    pipeline_api::orders::router(ApiState::new(pipeline.db.store(), test_authenticator()))
}

#[tokio::test]
async fn an_order_shows_its_barcodes_and_where_each_came_from() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app = router(&pipeline);
    let token = test_token("orders:read");
    let response = send(&app, get("/orders/1", Some(&token))).await;
    assert_eq!(response.status, StatusCode::OK);
    let body = response.json();
    assert_eq!(body["order_id"], 1);
    assert_eq!(body["customer_id"], 10);
    assert_eq!(body["tickets"], 2);
    assert_eq!(body["source"]["file"], "incoming/orders.csv");
    assert_eq!(body["source"]["line"], 2);
    assert_eq!(body["source"]["sale_id"], Value::Null);
    let barcodes = body["barcodes"].as_array().unwrap();
    assert_eq!(barcodes[0]["barcode"], "11111111111");
    assert_eq!(barcodes[0]["source"]["file"], "incoming/barcodes.csv");
    assert_eq!(barcodes[0]["source"]["line"], 2);
    assert_eq!(barcodes[1]["barcode"], "11111111318");
    assert_eq!(barcodes[1]["source"]["line"], 3);

    let missing = send(&app, get("/orders/999", Some(&token))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.content_type(), "application/problem+json");
    assert!(missing.json()["detail"].as_str().unwrap().contains("999"));

    for bad in ["abc", "0", "-1", "99999999999999999999"] {
        let response = send(&app, get(&format!("/orders/{bad}"), Some(&token))).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(response.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("order_id:"));
    }
}

#[tokio::test]
async fn customers_show_their_orders_and_tickets() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app = router(&pipeline);
    let token = test_token("orders:read");
    // data/: customer 10 has orders 1 (2 barcodes) and 3 (1 barcode).
    let response = send(&app, get("/customers/10", Some(&token))).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(
        response.json(),
        json!({"customer_id": 10, "orders": 2, "tickets": 3})
    );

    let response = send(&app, get("/customers/10/orders", Some(&token))).await;
    assert_eq!(response.status, StatusCode::OK);
    let body = response.json();
    let ids: Vec<i64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 3]);
    assert_eq!(body["items"][0]["tickets"], 2);
    assert_eq!(body["next_cursor"], Value::Null);

    // The same listing through /orders?customer_id=.
    let filtered = send(&app, get("/orders?customer_id=10", Some(&token)))
        .await
        .json();
    assert_eq!(filtered["items"], body["items"]);

    for uri in ["/customers/4242", "/customers/4242/orders"] {
        let response = send(&app, get(uri, Some(&token))).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{uri}");
    }
    let response = send(&app, get("/customers/x", Some(&token))).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(response.json()["detail"]
        .as_str()
        .unwrap()
        .starts_with("customer_id:"));
}

async fn walk_orders(
    app: &Router,
    token: &str,
    limit: usize,
    mut between_pages: impl AsyncFnMut(usize),
) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        let uri = match &cursor {
            Some(c) => format!("/orders?limit={limit}&cursor={c}"),
            None => format!("/orders?limit={limit}"),
        };
        let response = send(app, get(&uri, Some(token))).await;
        assert_eq!(response.status, StatusCode::OK, "{uri}");
        let body = response.json();
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        seen.extend(items.iter().map(|o| o["order_id"].as_i64().unwrap()));
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        between_pages(page).await;
    }
    seen
}

#[tokio::test]
async fn walking_every_page_lists_each_order_once_even_while_files_arrive() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app = router(&pipeline);
    let token = test_token("orders:read");

    let all = walk_orders(&app, &token, 3, async |_| {}).await;
    assert_eq!(all, (1..=8).collect::<Vec<_>>());

    // Ingest a file between pages: new orders before and after the cursor.
    pipeline
        .bucket
        .put(
            "incoming/more-orders.csv",
            "order_id,customer_id\n100,20\n101,21\n",
        )
        .await;
    let seen = walk_orders(&app, &token, 2, async |page| {
        if page == 1 {
            pipeline.ingest_key("incoming/more-orders.csv").await;
        }
    })
    .await;
    let unique: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "an order appeared twice: {seen:?}"
    );
    for id in 1..=8 {
        assert!(unique.contains(&id), "order {id} was skipped: {seen:?}");
    }
    assert!(unique.contains(&100) && unique.contains(&101));

    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "cursor=garbage",
        "customer_id=-2",
    ] {
        let response = send(&app, get(&format!("/orders?{bad}"), Some(&token))).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{bad}");
        let name = bad.split('=').next().unwrap();
        assert!(
            response.json()["detail"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{name}:")),
            "{bad}: {}",
            response.json()
        );
    }
}

#[tokio::test]
async fn bad_requests_get_problems_never_a_500() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app = router(&pipeline);
    let token = test_token_all();
    let auth = format!("Bearer {token}");
    // A JSON POST /orders with a body that may be anything.
    let post_orders = |body: &str| {
        Request::post("/orders")
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            Request::delete("/orders")
                .header("authorization", &auth)
                .body(Body::empty())
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "allowed",
        ),
        (
            Request::get("/nope").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
            "no route",
        ),
        (
            Request::post("/orders")
                .header("authorization", &auth)
                .body(Body::from("{}"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type",
        ),
        (
            post_orders("{nope"),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            post_orders(r#"{"customer_id": 1, "tickets": "two"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "tickets",
        ),
        (
            post_orders(r#"{"customer_id": 1}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "tickets",
        ),
        (
            post_orders(r#"{"customer_id": 1, "tickets": 0}"#),
            StatusCode::BAD_REQUEST,
            "tickets:",
        ),
        (
            post_orders(r#"{"customer_id": -5, "tickets": 1}"#),
            StatusCode::BAD_REQUEST,
            "customer_id:",
        ),
        (
            post_orders(&format!(
                r#"{{"customer_id": 1, "tickets": 1, "pad": "{}"}}"#,
                "x".repeat(100_000)
            )),
            StatusCode::PAYLOAD_TOO_LARGE,
            "limit",
        ),
        (
            Request::get("/orders/%FF")
                .header("authorization", &auth)
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            Request::get("/orders?limit=1&limit=2")
                .header("authorization", &auth)
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "",
        ),
    ];
    for (request, status, detail) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let response = send(&app, request).await;
        assert_eq!(
            response.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(
            response.content_type(),
            "application/problem+json",
            "{what}"
        );
        let body = response.json();
        assert_eq!(body["status"], status.as_u16(), "{what}");
        assert!(
            body["detail"].as_str().unwrap().contains(detail),
            "{what}: {body}"
        );
    }
}
