//! The API while a file loads: a request that would wait on the load's
//! locks (a first load's or a bulk load's dropped indexes hold the table
//! ACCESS EXCLUSIVE until commit; a merge holds the merge lock) gives up
//! after the configured lock timeout and answers 503 with Retry-After;
//! requests on the aggregates read through. Real loads, held open.

use std::time::Duration;

use analytics::AnalyticsState;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use order_pipeline::config::{DatabaseSettings, SessionLimits};
use order_pipeline::db::{self, Batch, Claim, LedgerEntry, LoadSession, ObjectVersion, PgStore};
use order_pipeline::domain::{Barcode, BarcodeRow, CustomerId, OrderId, OrderRow};
use order_pipeline::http::problem::{BUSY_PROBLEM_TYPE, BUSY_RETRY_AFTER};
use order_pipeline::testing::{
    get, post_json, send, test_authenticator, test_token_all, TestPipeline, TestResponse,
};
use orders::OrdersState;
use serde_json::json;
use tokio::sync::mpsc;

struct Api {
    orders: Router,
    analytics: Router,
    token: String,
}

impl Api {
    /// Both routers over a pool set up as the functions set theirs up.
    async fn new(pipeline: &TestPipeline, limits: SessionLimits) -> Self {
        let settings = DatabaseSettings {
            url: pipeline.db.url.clone(),
            pool_size: 2,
            connect_timeout: Duration::from_secs(10),
        };
        let store = || PgStore::new(db::connect_api_pool(&settings, &limits).unwrap());
        Self {
            orders: orders::router(OrdersState::new(store(), test_authenticator())),
            analytics: analytics::router(AnalyticsState::new(
                store(),
                test_authenticator(),
                pipeline.bucket.client.clone(),
                pipeline.bucket.name.clone(),
            )),
            token: test_token_all(),
        }
    }

    fn router(&self, path: &str) -> &Router {
        if path.starts_with("/analytics") {
            &self.analytics
        } else {
            &self.orders
        }
    }

    /// A GET, or a one-ticket sale for `POST /orders`. Before the fix a
    /// request hung until the load committed: the guard turns that hang
    /// into a failure instead of a stuck test.
    async fn call(&self, method: &str, path: &str) -> TestResponse {
        let request: Request<Body> = match method {
            "POST" => post_json(
                path,
                &self.token,
                &json!({"customer_id": 10, "tickets": 1}),
                None,
            ),
            _ => get(path, Some(&self.token)),
        };
        tokio::time::timeout(Duration::from_secs(60), send(self.router(path), request))
            .await
            .unwrap_or_else(|_| panic!("{method} {path} waited on the load instead of answering"))
    }

    async fn assert_busy(&self, method: &str, path: &str) {
        let response = self.call(method, path).await;
        let body = String::from_utf8_lossy(&response.body).into_owned();
        assert_eq!(
            response.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {body}"
        );
        assert_eq!(
            response.header("retry-after"),
            Some(BUSY_RETRY_AFTER.as_secs().to_string().as_str()),
            "{method} {path}"
        );
        assert_eq!(response.content_type(), "application/problem+json");
        assert_eq!(
            response.json()["type"],
            BUSY_PROBLEM_TYPE,
            "{method} {path}"
        );
    }

    async fn assert_status(&self, method: &str, path: &str, status: StatusCode) -> TestResponse {
        let response = self.call(method, path).await;
        assert_eq!(
            response.status,
            status,
            "{method} {path}: {}",
            String::from_utf8_lossy(&response.body)
        );
        response
    }
}

const SHORT_WAITS: SessionLimits = SessionLimits {
    lock_timeout: Duration::from_millis(300),
    statement_timeout: Duration::from_secs(30),
};

async fn begin_load(pipeline: &TestPipeline, key: &str) -> Box<LoadSession> {
    let version = ObjectVersion {
        bucket: pipeline.bucket.name.clone(),
        key: key.to_owned(),
        etag: "\"held-open\"".to_owned(),
        version_id: String::new(),
    };
    match pipeline.db.store().begin_ingestion(&version).await.unwrap() {
        Claim::Claimed(session) => session,
        Claim::Final { .. } => panic!("{key} is new"),
    }
}

async fn commit(session: Box<LoadSession>, kind: &'static str, counts: db::LoadCounts) {
    session
        .commit(&LedgerEntry {
            kind,
            counts,
            report_key: "reports/held-open.json".to_owned(),
            rejects_key: None,
            duration_ms: 1,
        })
        .await
        .unwrap();
}

/// Whether some session holds `table` ACCESS EXCLUSIVE.
async fn exclusively_locked(pipeline: &TestPipeline, table: &str) -> bool {
    pipeline
        .scalar(&format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
             WHERE c.relname = '{table}' AND l.mode = 'AccessExclusiveLock' AND l.granted
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ))
        .await
        > 0
}

#[tokio::test]
async fn during_a_bulk_orders_load_requests_answer_503_with_retry_after_or_read_through() {
    let pipeline = TestPipeline::with_sample_data(3).await;
    let api = Api::new(&pipeline, SHORT_WAITS).await;
    let before = api
        .assert_status("GET", "/analytics/top-customers", StatusCode::OK)
        .await
        .json();

    // More new orders than stored ones: bulk mode drops the orders
    // indexes inside the load's transaction. Merged, not committed.
    let mut session = begin_load(&pipeline, "incoming/bulk-orders.csv").await;
    let rows = (0..10_001)
        .map(|i| {
            Ok(OrderRow {
                line: i + 2,
                order_id: OrderId::from_trusted(1_000_000 + i as i64),
                customer_id: CustomerId::from_trusted(99),
            })
        })
        .collect();
    let (batches, incoming) = mpsc::channel(2);
    batches.send(Batch::Rows(rows)).await.unwrap();
    batches.send(Batch::Complete).await.unwrap();
    let counts = session.load_orders(incoming).await.unwrap();
    assert!(exclusively_locked(&pipeline, "orders").await, "bulk mode");

    for (method, path) in [
        ("GET", "/orders/1"),
        ("GET", "/orders?limit=2"),
        ("GET", "/customers/10"),
        ("GET", "/customers/10/orders"),
        ("POST", "/orders"),
    ] {
        api.assert_busy(method, path).await;
    }
    // The aggregates are only row-locked by a load: read through, showing
    // what was committed before it.
    let during = api
        .assert_status("GET", "/analytics/top-customers", StatusCode::OK)
        .await
        .json();
    assert_eq!(during, before);
    api.assert_status("GET", "/analytics/summary", StatusCode::OK)
        .await;

    commit(session, "orders", counts).await;
    api.assert_status("GET", "/orders/1", StatusCode::OK).await;
    api.assert_status("GET", "/orders/1010000", StatusCode::OK)
        .await;
    api.assert_status("POST", "/orders", StatusCode::CREATED)
        .await;
}

#[tokio::test]
async fn during_a_first_barcodes_load_requests_answer_503_with_retry_after_or_read_through() {
    let pipeline = TestPipeline::create().await;
    let orders = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/orders.csv"
    ))
    .unwrap();
    pipeline.bucket.put("incoming/orders.csv", orders).await;
    pipeline.ingest_key("incoming/orders.csv").await;
    let api = Api::new(&pipeline, SHORT_WAITS).await;

    // A first barcodes load streams straight into the empty table, its
    // indexes dropped: held open half-way through its rows.
    let mut session = begin_load(&pipeline, "incoming/barcodes.csv").await;
    let (batches, incoming) = mpsc::channel(2);
    let load = tokio::spawn(async move {
        let mut export = |_| Ok(());
        let counts = session.load_barcodes(incoming, &mut export).await;
        (session, counts)
    });
    let rows = (0..5)
        .map(|i| {
            Ok(BarcodeRow {
                line: i + 2,
                barcode: Barcode::from_trusted(format!("HELD{i}")),
                order_id: (i < 2).then(|| OrderId::from_trusted(1)),
            })
        })
        .collect();
    batches.send(Batch::Rows(rows)).await.unwrap();
    while !exclusively_locked(&pipeline, "barcodes").await {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for (method, path) in [
        ("GET", "/orders/1"),
        ("GET", "/orders?limit=2"),
        ("GET", "/analytics/unused-barcodes?limit=5"),
        ("POST", "/orders"),
    ] {
        api.assert_busy(method, path).await;
    }
    api.assert_status("GET", "/analytics/top-customers", StatusCode::OK)
        .await;
    api.assert_status("GET", "/analytics/unused-barcodes?limit=0", StatusCode::OK)
        .await;

    batches.send(Batch::Complete).await.unwrap();
    let (session, counts) = load.await.unwrap();
    commit(session, "barcodes", counts.unwrap()).await;
    let order = api
        .assert_status("GET", "/orders/1", StatusCode::OK)
        .await
        .json();
    assert_eq!(order["tickets"], 2);
    api.assert_status("POST", "/orders", StatusCode::CREATED)
        .await;
}

#[tokio::test]
async fn a_statement_over_its_time_limit_answers_503_with_retry_after() {
    let pipeline = TestPipeline::with_sample_data(0).await;
    // The lock wait outlasts the statement's limit: the statement timeout
    // is what ends it.
    let api = Api::new(
        &pipeline,
        SessionLimits {
            lock_timeout: Duration::from_secs(60),
            statement_timeout: Duration::from_millis(300),
        },
    )
    .await;
    let mut holder = pipeline.db.pool.get().await.unwrap();
    let lock = holder.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    api.assert_busy("GET", "/orders/1").await;
    lock.rollback().await.unwrap();
    api.assert_status("GET", "/orders/1", StatusCode::OK).await;
}
