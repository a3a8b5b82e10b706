//! Ticket sales through POST /orders: all or nothing, never a barcode
//! twice, exactly once per Idempotency-Key, and under the orders role;
//! against PostgreSQL holding the sample data.

use std::collections::HashSet;

use axum::http::StatusCode;
use axum::Router;
use pipeline_api::state::ApiState;
use pipeline_test_support::{
    get, post_json, send, test_authenticator, test_token, test_token_all, TestPipeline,
    TestResponse,
};
use serde_json::json;

fn router(pipeline: &TestPipeline) -> Router {
    pipeline_api::orders::router(ApiState::new(pipeline.db.store(), test_authenticator()))
}

/// Sends every sale (its body and Idempotency-Key) at once; the answers
/// in the same order.
async fn sell_at_once(
    app: &Router,
    token: &str,
    sales: impl Iterator<Item = (serde_json::Value, Option<&'static str>)>,
) -> Vec<TestResponse> {
    futures_util::future::join_all(
        sales.map(|(body, key)| send(app, post_json("/orders", token, &body, key))),
    )
    .await
}

#[tokio::test]
async fn a_sale_sells_unused_barcodes_and_moves_every_aggregate() {
    let pipeline = TestPipeline::with_sample_data(10).await;
    let app = router(&pipeline);
    let token = test_token_all();
    let before_version = pipeline.stat("data_version").await;
    let before_unused = pipeline.stat("unused_barcodes").await;
    let before_orders = pipeline.stat("orders").await;

    let response = send(
        &app,
        post_json(
            "/orders",
            &token,
            &json!({"customer_id": 13, "tickets": 3}),
            None,
        ),
    )
    .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.json());
    let order = response.json();
    let order_id = order["order_id"].as_i64().unwrap();
    assert!(
        order_id >= 9_000_000_000_000_000_000,
        "sales draw ids from their own range"
    );
    assert_eq!(
        response.header("location").unwrap(),
        format!("/orders/{order_id}")
    );
    assert_eq!(order["customer_id"], 13);
    assert_eq!(order["tickets"], 3);
    let sale_id = order["source"]["sale_id"].as_i64().expect("a sale id");
    // The lowest unused codes: data/ leaves 77777777777, ...784 and ...791 unsold.
    let codes: Vec<&str> = order["barcodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["barcode"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["77777777777", "77777777784", "77777777791"]);
    assert_eq!(order["barcodes"][0]["source"]["sale_id"], sale_id);
    assert_eq!(
        order["barcodes"][0]["source"]["file"],
        "incoming/barcodes.csv"
    );

    // GET shows the same order.
    let fetched = send(&app, get(&format!("/orders/{order_id}"), Some(&token))).await;
    assert_eq!(fetched.json(), order);

    // Aggregates, as an ingest would have moved them.
    assert_eq!(pipeline.stat("data_version").await, before_version + 1);
    assert_eq!(pipeline.stat("unused_barcodes").await, before_unused - 3);
    assert_eq!(pipeline.stat("orders").await, before_orders + 1);
    assert_eq!(
        pipeline.stat("unused_barcodes").await,
        pipeline
            .scalar("SELECT count(*) FROM barcodes WHERE order_id IS NULL")
            .await
    );
    assert_eq!(
        pipeline
            .scalar("SELECT tickets FROM customer_tickets WHERE customer_id = 13")
            .await,
        1 + 3
    );
    let customer = send(&app, get("/customers/13", Some(&token))).await.json();
    assert_eq!(
        customer,
        json!({"customer_id": 13, "orders": 2, "tickets": 4})
    );

    // The sale is in the next processed_orders.csv.
    pipeline
        .ingestor
        .publish_processed_orders(&pipeline.bucket.name)
        .await
        .unwrap();
    let csv = pipeline
        .bucket
        .get_text("processed/processed_orders.csv")
        .await
        .unwrap();
    assert!(
        csv.contains(&format!("13,{order_id},77777777777"))
            || csv
                .lines()
                .any(|l| l.contains(&order_id.to_string()) && l.contains("77777777791")),
        "{csv}"
    );

    // A barcodes file that later assigns a sold barcode elsewhere is rejected for that row.
    pipeline
        .bucket
        .put("incoming/late.csv", "barcode,order_id\n77777777777,5\n")
        .await;
    let report = pipeline.ingest_key("incoming/late.csv").await;
    assert_eq!(report.counts.rejected, 1);

    // More than remain: 409, nothing sold.
    let unused = pipeline.stat("unused_barcodes").await;
    let response = send(
        &app,
        post_json(
            "/orders",
            &token,
            &json!({"customer_id": 13, "tickets": unused + 1}),
            None,
        ),
    )
    .await;
    assert_eq!(response.status, StatusCode::CONFLICT);
    assert_eq!(response.content_type(), "application/problem+json");
    assert_eq!(pipeline.stat("unused_barcodes").await, unused);
}

#[tokio::test]
async fn hundreds_of_concurrent_sales_never_sell_a_barcode_twice() {
    const SALES: usize = 300;
    let pipeline = TestPipeline::with_sample_data(699).await;
    let app = router(&pipeline);
    let token = test_token("orders:write");
    let unused_before = pipeline.stat("unused_barcodes").await;
    assert_eq!(unused_before, 702);
    let results = sell_at_once(
        &app,
        &token,
        (0..SALES).map(|i| (json!({"customer_id": 1000 + (i % 7), "tickets": 3}), None)),
    )
    .await;
    let mut sold = HashSet::new();
    let mut orders = HashSet::new();
    let mut conflicts = 0;
    for response in &results {
        match response.status {
            StatusCode::CREATED => {
                let body = response.json();
                assert!(orders.insert(body["order_id"].as_i64().unwrap()));
                for barcode in body["barcodes"].as_array().unwrap() {
                    let code = barcode["barcode"].as_str().unwrap().to_owned();
                    assert!(sold.insert(code.clone()), "{code} was sold twice");
                }
            }
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!(
                "unexpected {other}: {}",
                String::from_utf8_lossy(&response.body)
            ),
        }
    }
    // 702 unused, 3 per sale: 234 sales succeed, the rest find too few.
    assert_eq!(orders.len(), 234);
    assert_eq!(conflicts, SALES - 234);
    assert_eq!(sold.len(), 702);
    assert_eq!(
        pipeline
            .scalar("SELECT count(*) FROM barcodes WHERE order_id IS NULL")
            .await,
        0
    );
    assert_eq!(pipeline.stat("unused_barcodes").await, 0);
    assert_eq!(
        pipeline
            .scalar("SELECT count(*) FROM barcodes WHERE sale_id IS NOT NULL")
            .await,
        702
    );
    assert_eq!(
        pipeline
            .scalar("SELECT sum(tickets)::bigint FROM customer_tickets WHERE customer_id >= 1000")
            .await,
        702
    );
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retry_return_the_first_sale() {
    let pipeline = TestPipeline::with_sample_data(50).await;
    let app = router(&pipeline);
    let token = test_token("orders:write");
    let body = json!({"customer_id": 11, "tickets": 2});
    let first = send(&app, post_json("/orders", &token, &body, Some("sale-1"))).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let retry = send(&app, post_json("/orders", &token, &body, Some("sale-1"))).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.json(), first.json());
    assert_eq!(pipeline.scalar("SELECT count(*) FROM sales").await, 1);

    let other = send(
        &app,
        post_json(
            "/orders",
            &token,
            &json!({"customer_id": 11, "tickets": 3}),
            Some("sale-1"),
        ),
    )
    .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.content_type(), "application/problem+json");

    // The same key sent ten times at once sells once.
    let results = sell_at_once(
        &app,
        &token,
        (0..10).map(|_| (json!({"customer_id": 12, "tickets": 1}), Some("burst"))),
    )
    .await;
    let created = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1);
    let ids: HashSet<i64> = results
        .iter()
        .map(|r| r.json()["order_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(pipeline.scalar("SELECT count(*) FROM sales").await, 2);
    assert_eq!(
        pipeline
            .scalar("SELECT count(*) FROM barcodes WHERE sale_id IS NOT NULL")
            .await,
        3
    );
}

#[tokio::test]
async fn idempotency_keys_belong_to_the_token_subject() {
    use pipeline_api::http::auth::issue_hs256;
    use pipeline_test_support::TEST_JWT_SECRET;
    let pipeline = TestPipeline::with_sample_data(10).await;
    let app = router(&pipeline);
    let as_subject = |sub: &str| {
        issue_hs256(
            TEST_JWT_SECRET.as_bytes(),
            sub,
            &["orders:write"],
            std::time::Duration::from_secs(60),
            None,
            None,
        )
    };
    let body = json!({"customer_id": 11, "tickets": 1});
    let alice = send(
        &app,
        post_json("/orders", &as_subject("alice"), &body, Some("k1")),
    )
    .await;
    let bob = send(
        &app,
        post_json("/orders", &as_subject("bob"), &body, Some("k1")),
    )
    .await;
    assert_eq!(alice.status, StatusCode::CREATED);
    assert_eq!(
        bob.status,
        StatusCode::CREATED,
        "bob's k1 is not alice's k1"
    );
    assert_ne!(alice.json()["order_id"], bob.json()["order_id"]);
}

/// The orders function connects as its own database role
/// (migrations/V4__roles.sql), which may read and sell but change no schema:
/// every route, a sale, its replay and a refused sale work under it.
#[tokio::test]
async fn the_orders_routes_work_as_the_orders_role() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let store = pipeline
        .db
        .store_as(order_pipeline::postgres::roles::DatabaseRole::Orders)
        .await;
    let app = pipeline_api::orders::router(ApiState::new(store, test_authenticator()));
    let token = test_token_all();
    let sell = |tickets: i64, key: &'static str| {
        post_json(
            "/orders",
            &token,
            &json!({"customer_id": 13, "tickets": tickets}),
            Some(key),
        )
    };
    let sale = send(&app, sell(2, "role-sale")).await;
    assert_eq!(sale.status, StatusCode::CREATED, "{}", sale.json());
    let order = sale.json();
    let replay = send(&app, sell(2, "role-sale")).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.json(), order);
    let too_many = send(&app, sell(5, "role-too-many")).await;
    assert_eq!(too_many.status, StatusCode::CONFLICT);

    let order_id = order["order_id"].as_i64().unwrap();
    for path in [
        format!("/orders/{order_id}"),
        "/orders?limit=2".to_owned(),
        "/orders?customer_id=13".to_owned(),
        "/customers/13".to_owned(),
        "/customers/13/orders".to_owned(),
        "/openapi.json".to_owned(),
    ] {
        let response = send(&app, get(&path, Some(&token))).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{path}: {:?}",
            response.body
        );
    }
    let fetched = send(&app, get(&format!("/orders/{order_id}"), Some(&token))).await;
    assert_eq!(fetched.json(), order);
    assert_eq!(
        pipeline
            .scalar("SELECT tickets FROM customer_tickets WHERE customer_id = 13")
            .await,
        1 + 2
    );
}
