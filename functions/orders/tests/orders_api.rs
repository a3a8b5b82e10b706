//! The orders routes against PostgreSQL holding the sample data, loaded
//! through the real ingest path (LocalStack S3 -> ingest -> PostgreSQL).

use std::collections::{BTreeSet, HashSet};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use pipeline_api::orders::OrdersState;
use pipeline_test_support::{
    get, post_json, send, test_authenticator, test_token, test_token_all, TestPipeline,
};
use serde_json::{json, Value};

fn router(pipeline: &TestPipeline) -> Router {
    pipeline_api::orders::router(OrdersState::new(pipeline.db.store(), test_authenticator()))
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
async fn a_sale_sells_unused_barcodes_and_moves_every_aggregate() {
    let pipeline = TestPipeline::with_sample_data(10).await;
    let app = router(&pipeline);
    let token = test_token_all();
    let before_version = pipeline
        .scalar("SELECT data_version FROM pipeline_stats")
        .await;
    let before_unused = pipeline
        .scalar("SELECT unused_barcodes FROM pipeline_stats")
        .await;
    let before_orders = pipeline.scalar("SELECT orders FROM pipeline_stats").await;

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
    assert_eq!(
        pipeline
            .scalar("SELECT data_version FROM pipeline_stats")
            .await,
        before_version + 1
    );
    assert_eq!(
        pipeline
            .scalar("SELECT unused_barcodes FROM pipeline_stats")
            .await,
        before_unused - 3
    );
    assert_eq!(
        pipeline.scalar("SELECT orders FROM pipeline_stats").await,
        before_orders + 1
    );
    assert_eq!(
        pipeline
            .scalar("SELECT unused_barcodes FROM pipeline_stats")
            .await,
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
    let unused = pipeline
        .scalar("SELECT unused_barcodes FROM pipeline_stats")
        .await;
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
    assert_eq!(
        pipeline
            .scalar("SELECT unused_barcodes FROM pipeline_stats")
            .await,
        unused
    );
}

#[tokio::test]
async fn hundreds_of_concurrent_sales_never_sell_a_barcode_twice() {
    const SALES: usize = 300;
    let pipeline = TestPipeline::with_sample_data(699).await;
    let app = router(&pipeline);
    let token = test_token("orders:write");
    let unused_before = pipeline
        .scalar("SELECT unused_barcodes FROM pipeline_stats")
        .await;
    assert_eq!(unused_before, 702);
    let results = futures_util::future::join_all((0..SALES).map(|i| {
        let app = app.clone();
        let token = token.clone();
        async move {
            send(
                &app,
                post_json(
                    "/orders",
                    &token,
                    &json!({"customer_id": 1000 + (i % 7), "tickets": 3}),
                    None,
                ),
            )
            .await
        }
    }))
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
    assert_eq!(
        pipeline
            .scalar("SELECT unused_barcodes FROM pipeline_stats")
            .await,
        0
    );
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
    let results = futures_util::future::join_all((0..10).map(|_| {
        let app = app.clone();
        let token = token.clone();
        async move {
            send(
                &app,
                post_json(
                    "/orders",
                    &token,
                    &json!({"customer_id": 12, "tickets": 1}),
                    Some("burst"),
                ),
            )
            .await
        }
    }))
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
async fn bad_requests_get_problems_never_a_500() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app = router(&pipeline);
    let token = test_token_all();
    let auth = format!("Bearer {token}");
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
            Request::post("/orders")
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .body(Body::from("{nope"))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            Request::post("/orders")
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"customer_id": 1, "tickets": "two"}"#))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "tickets",
        ),
        (
            Request::post("/orders")
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"customer_id": 1}"#))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "tickets",
        ),
        (
            Request::post("/orders")
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"customer_id": 1, "tickets": 0}"#))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "tickets:",
        ),
        (
            Request::post("/orders")
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .body(Body::from(r#"{"customer_id": -5, "tickets": 1}"#))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "customer_id:",
        ),
        (
            Request::post("/orders")
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .body(Body::from(format!(
                    r#"{{"customer_id": 1, "tickets": 1, "pad": "{}"}}"#,
                    "x".repeat(100_000)
                )))
                .unwrap(),
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

const FIRST_SALE_ID: i64 = order_pipeline::domain::FIRST_SALE_ORDER_ID;
const RESERVED: &str =
    "order ids from 9000000000000000000 up are reserved for sales made through the API";

/// Ingests `body` as `key`; returns the report's problems as (line, field, reason).
async fn ingest_text(pipeline: &TestPipeline, key: &str, body: &str) -> Vec<(u64, String, String)> {
    pipeline.bucket.put(key, body.to_owned()).await;
    let report = pipeline.ingest_key(key).await;
    report
        .problems
        .iter()
        .map(|p| (p.line, p.field.clone(), p.reason.clone()))
        .collect()
}

async fn sell_one(app: &Router, customer_id: i64) -> Value {
    let response = send(
        app,
        post_json(
            "/orders",
            &test_token_all(),
            &json!({"customer_id": customer_id, "tickets": 1}),
            None,
        ),
    )
    .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.json());
    response.json()
}

#[tokio::test]
async fn files_cannot_name_order_ids_of_the_sales_range_so_a_sale_gets_only_what_it_sold() {
    let pipeline = TestPipeline::with_sample_data(3).await;
    let app = router(&pipeline);
    assert_eq!(
        pipeline
            .scalar("SELECT min_value FROM pg_sequences WHERE sequencename = 'sale_order_ids'")
            .await,
        FIRST_SALE_ID,
        "the reserved range is the sales sequence's"
    );
    // A barcode waiting for an order with the id the next sale draws, a
    // block of them, and an order in the range.
    let mut barcodes = format!("barcode,order_id\nPRESOLD1,{FIRST_SALE_ID}\n");
    for i in 1..=5 {
        barcodes.push_str(&format!("PRESOLD{},{}\n", i + 1, FIRST_SALE_ID + i));
    }
    let problems = ingest_text(&pipeline, "incoming/early-barcodes.csv", &barcodes).await;
    assert_eq!(problems.len(), 6, "{problems:?}");
    for (n, (line, field, reason)) in problems.iter().enumerate() {
        assert_eq!((*line, field.as_str()), (n as u64 + 2, "order_id"));
        assert!(reason.contains(RESERVED), "{reason}");
    }
    let problems = ingest_text(
        &pipeline,
        "incoming/range-orders.csv",
        &format!("order_id,customer_id\n{},77\n", FIRST_SALE_ID + 10),
    )
    .await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].2.contains(RESERVED), "{problems:?}");

    let order = sell_one(&app, 13).await;
    assert_eq!(order["order_id"], FIRST_SALE_ID);
    assert_eq!(order["tickets"], 1, "{order}");
    assert_eq!(order["barcodes"].as_array().unwrap().len(), 1);
    let customer = send(&app, get("/customers/13", Some(&test_token_all())))
        .await
        .json();
    // data/: customer 13 held one ticket before the sale.
    assert_eq!(customer["tickets"], 2, "{customer}");
    assert_eq!(
        pipeline
            .scalar("SELECT count(*) FROM barcodes WHERE order_id >= 9000000000000000000")
            .await,
        1
    );
}

#[tokio::test]
async fn a_file_naming_a_sales_order_id_is_rejected_and_the_sale_keeps_its_tickets() {
    let pipeline = TestPipeline::with_sample_data(3).await;
    let app = router(&pipeline);
    let order = sell_one(&app, 12).await;
    let order_id = order["order_id"].as_i64().unwrap();
    let problems = ingest_text(
        &pipeline,
        "incoming/late-barcodes.csv",
        &format!("barcode,order_id\nLATE1,{order_id}\n"),
    )
    .await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].2.contains(RESERVED), "{problems:?}");
    let problems = ingest_text(
        &pipeline,
        "incoming/late-orders.csv",
        &format!("order_id,customer_id\n{order_id},12\n"),
    )
    .await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].2.contains(RESERVED), "{problems:?}");
    let fetched = send(
        &app,
        get(&format!("/orders/{order_id}"), Some(&test_token_all())),
    )
    .await
    .json();
    assert_eq!(fetched, order);
}

#[tokio::test]
async fn sales_draw_past_file_ids_a_database_took_in_the_range_before_it_was_reserved() {
    let pipeline = TestPipeline::with_sample_data(3).await;
    let app = router(&pipeline);
    // As an older version stored them: an order and a waiting barcode at
    // the first ids of the range.
    let client = pipeline.db.pool.get().await.unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO orders (order_id, customer_id, ingestion_id, source_line)
                 VALUES ({FIRST_SALE_ID}, 77, 1, 2);
             INSERT INTO barcodes (barcode, order_id, ingestion_id, source_line)
                 VALUES ('OLD1', {}, 1, 3);",
            FIRST_SALE_ID + 3
        ))
        .await
        .unwrap();
    client
        .batch_execute(include_str!(
            "../../../migrations/V5__reserve_sales_order_ids.sql"
        ))
        .await
        .unwrap();
    let order = sell_one(&app, 12).await;
    assert_eq!(order["order_id"], FIRST_SALE_ID + 4);
    assert_eq!(order["tickets"], 1, "{order}");
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
    let app = pipeline_api::orders::router(OrdersState::new(store, test_authenticator()));
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
