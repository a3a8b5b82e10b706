//! The sales range of order ids (from `FIRST_SALE_ORDER_ID` up): files may
//! not name its ids, so a sale never meets a file's order or a barcode
//! waiting for one.

use axum::http::StatusCode;
use axum::Router;
use pipeline_api::state::ApiState;
use pipeline_test_support::{
    get, post_json, send, test_authenticator, test_token_all, TestPipeline,
};
use serde_json::{json, Value};

fn router(pipeline: &TestPipeline) -> Router {
    pipeline_api::orders::router(ApiState::new(pipeline.db.store(), test_authenticator()))
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
