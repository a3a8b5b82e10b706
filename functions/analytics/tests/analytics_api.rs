//! The analytics routes against PostgreSQL holding the sample data, loaded
//! through the real ingest path (LocalStack S3 -> ingest -> PostgreSQL).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use order_pipeline::testing::{TestDatabase, TestPipeline};
use serde_json::{json, Value};
use tower::ServiceExt;

async fn loaded_database() -> TestPipeline {
    let pipeline = TestPipeline::create().await;
    for (key, body) in [
        (
            "incoming/orders.csv",
            include_str!("../../../data/orders.csv"),
        ),
        (
            "incoming/barcodes.csv",
            include_str!("../../../data/barcodes.csv"),
        ),
    ] {
        pipeline.bucket.put(key, body).await;
        pipeline.ingest_key(key).await;
    }
    pipeline
}

async fn get(db: &TestDatabase, uri: &str) -> (StatusCode, String, Value) {
    let response = analytics::router(db.store())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn top_customers_match_the_sample_data() {
    let pipeline = loaded_database().await;
    let db = &pipeline.db;
    // data/: customer 11 and 12 hold 4 tickets each (tie: lower id first),
    // 10 holds 3 and 13 holds 1; duplicates and unsold barcodes do not count.
    let (status, _, body) = get(db, "/analytics/top-customers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!([
            {"customer_id": 11, "tickets": 4},
            {"customer_id": 12, "tickets": 4},
            {"customer_id": 10, "tickets": 3},
            {"customer_id": 13, "tickets": 1}
        ])
    );
    let (_, _, body) = get(db, "/analytics/top-customers?limit=2").await;
    assert_eq!(body.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_bad_limit_is_a_problem_naming_the_parameter() {
    let db = TestDatabase::create().await;
    for bad in ["0", "101", "ten", "-1"] {
        let (status, content_type, body) =
            get(&db, &format!("/analytics/top-customers?limit={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(content_type, "application/problem+json");
        assert!(
            body["detail"].as_str().unwrap().starts_with("limit:"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn health_checks_the_database() {
    let db = TestDatabase::create().await;
    let (status, _, body) = get(&db, "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["database"], "ok");

    db.pool.close();
    let (status, content_type, _) = get(&db, "/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(content_type, "application/problem+json");
}
