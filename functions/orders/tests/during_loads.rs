//! The API while a file loads. Reads are served from the committed tables
//! whatever the load does: a first load or a bulk load writes a shadow
//! table and swaps it in at its commit (migrations/V6__shadow_loads.sql),
//! so no reader waits on it. A sale waits on the merge lock the load holds,
//! gives up after the configured lock timeout and answers 503 with
//! Retry-After; requests on the aggregates read through. Real loads, held
//! open.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use order_pipeline::config::{DatabaseSettings, SessionLimits};
use order_pipeline::domain::{Barcode, BarcodeRow, CustomerId, OrderId, OrderRow};
use order_pipeline::postgres::ledger::{Claim, LedgerEntry, ObjectVersion};
use order_pipeline::postgres::load::{self, Batch, LoadSession};
use order_pipeline::postgres::{self, PgStore};
use pipeline_api::analytics::AnalyticsState;
use pipeline_api::http::problem::{BUSY_PROBLEM_TYPE, BUSY_RETRY_AFTER};
use pipeline_api::state::ApiState;
use pipeline_test_support::{
    get, post_json, send, test_authenticator, test_token_all, TestPipeline, TestResponse,
};
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
        let store = || PgStore::new(postgres::pool::connect_api_pool(&settings, &limits).unwrap());
        Self {
            orders: pipeline_api::orders::router(ApiState::new(store(), test_authenticator())),
            analytics: pipeline_api::analytics::router(AnalyticsState::new(
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

    /// The body of a GET that must answer 200.
    async fn json(&self, path: &str) -> serde_json::Value {
        self.assert_status("GET", path, StatusCode::OK).await.json()
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

async fn commit(session: Box<LoadSession>, kind: &'static str, counts: load::LoadCounts) {
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

/// Waits until a load streams `table`'s rows in (its shadow, or the live
/// table's when a load writes it in place): the load has taken whatever it
/// takes on the table by then.
async fn wait_for_copy_into(pipeline: &TestPipeline, table: &str) {
    let copying = format!(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND state = 'active' AND query LIKE 'COPY {table} %'"
    );
    while pipeline.scalar(&copying).await == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Shadow tables of loads that committed or rolled back: none is left.
const SHADOWS_LEFT: &str =
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'pipeline_load'";

/// A first orders load of `count` orders from 1 on, customers 10 and up,
/// held open with its rows streamed in but not complete. Returns the task
/// that finishes it once `Batch::Complete` is sent.
async fn hold_first_orders_load(
    pipeline: &TestPipeline,
    count: u64,
) -> (
    mpsc::Sender<Batch<OrderRow>>,
    tokio::task::JoinHandle<(
        Box<LoadSession>,
        Result<load::LoadCounts, postgres::DbError>,
    )>,
) {
    let mut session = begin_load(pipeline, "incoming/first-orders.csv").await;
    let (batches, incoming) = mpsc::channel(2);
    let load = tokio::spawn(async move {
        let counts = session.load_orders(incoming).await;
        (session, counts)
    });
    let rows = (0..count)
        .map(|i| {
            Ok(OrderRow {
                line: i + 2,
                order_id: OrderId::from_trusted(1 + i as i64),
                customer_id: CustomerId::from_trusted(10 + i as i64),
            })
        })
        .collect();
    batches.send(Batch::Rows(rows)).await.unwrap();
    wait_for_copy_into(pipeline, "orders").await;
    (batches, load)
}

#[tokio::test]
async fn during_a_bulk_orders_load_reads_see_the_committed_orders_and_sales_answer_503() {
    let pipeline = TestPipeline::with_sample_data(3).await;
    let api = Api::new(&pipeline, SHORT_WAITS).await;
    let before = api.json("/analytics/top-customers").await;

    // More new orders than stored ones: bulk mode, indexes built once, in
    // the load's transaction. Merged, not committed.
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

    // Reads answer from the committed orders: the new ones are not there
    // yet.
    for path in [
        "/orders/1",
        "/orders?limit=2",
        "/customers/10",
        "/customers/10/orders",
    ] {
        api.assert_status("GET", path, StatusCode::OK).await;
    }
    api.assert_status("GET", "/orders/1010000", StatusCode::NOT_FOUND)
        .await;
    // A sale waits on the merge lock the load holds.
    api.assert_busy("POST", "/orders").await;
    // The aggregates are only row-locked by a load: read through, showing
    // what was committed before it.
    let during = api.json("/analytics/top-customers").await;
    assert_eq!(during, before);
    api.assert_status("GET", "/analytics/summary", StatusCode::OK)
        .await;

    commit(session, "orders", counts).await;
    assert_eq!(pipeline.scalar(SHADOWS_LEFT).await, 0);
    api.assert_status("GET", "/orders/1", StatusCode::OK).await;
    api.assert_status("GET", "/orders/1010000", StatusCode::OK)
        .await;
    api.assert_status("POST", "/orders", StatusCode::CREATED)
        .await;
}

#[tokio::test]
async fn during_a_first_barcodes_load_reads_see_the_committed_data_and_sales_answer_503() {
    let pipeline = TestPipeline::create().await;
    let orders = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/orders.csv"
    ))
    .unwrap();
    pipeline.bucket.put("incoming/orders.csv", orders).await;
    pipeline.ingest_key("incoming/orders.csv").await;
    let api = Api::new(&pipeline, SHORT_WAITS).await;

    // A first barcodes load streams into its shadow of the empty table:
    // held open half-way through its rows.
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
    wait_for_copy_into(&pipeline, "barcodes").await;

    // Reads answer from the committed (empty) barcodes.
    let order = api.json("/orders/1").await;
    assert_eq!(order["tickets"], 0);
    api.assert_status("GET", "/orders?limit=2", StatusCode::OK)
        .await;
    let unused = api.json("/analytics/unused-barcodes?limit=5").await;
    assert_eq!(unused["barcodes"], json!([]));
    api.assert_busy("POST", "/orders").await;
    api.assert_status("GET", "/analytics/top-customers", StatusCode::OK)
        .await;
    api.assert_status("GET", "/analytics/unused-barcodes?limit=0", StatusCode::OK)
        .await;

    batches.send(Batch::Complete).await.unwrap();
    let (session, counts) = load.await.unwrap();
    commit(session, "barcodes", counts.unwrap()).await;
    let order = api.json("/orders/1").await;
    assert_eq!(order["tickets"], 2);
    let unused = api.json("/analytics/unused-barcodes?limit=5").await;
    assert_eq!(unused["barcodes"].as_array().unwrap().len(), 3, "{unused}");
    api.assert_status("POST", "/orders", StatusCode::CREATED)
        .await;
}

/// The API's statements are prepared once per connection and cached; the
/// swap replaces the table under them, and PostgreSQL plans them again by
/// name: the same connections answer the new orders.
#[tokio::test]
async fn during_a_first_orders_load_reads_answer_404_then_the_new_orders_after_the_commit() {
    let pipeline = TestPipeline::create().await;
    let api = Api::new(&pipeline, SHORT_WAITS).await;
    let reads = [
        "/orders/1",
        "/orders?limit=100",
        "/customers/10/orders",
        "/analytics/unused-barcodes?limit=100",
    ];
    // Every read prepared on the pooled connections before the load.
    for path in reads {
        api.call("GET", path).await;
    }

    let (batches, load) = hold_first_orders_load(&pipeline, 20).await;
    for path in ["/orders/1", "/customers/10/orders"] {
        api.assert_status("GET", path, StatusCode::NOT_FOUND).await;
    }
    let listed = api.json("/orders?limit=100").await;
    assert_eq!(listed["items"], json!([]), "{listed}");
    api.assert_status(
        "GET",
        "/analytics/unused-barcodes?limit=100",
        StatusCode::OK,
    )
    .await;

    batches.send(Batch::Complete).await.unwrap();
    let (session, counts) = load.await.unwrap();
    commit(session, "orders", counts.unwrap()).await;
    assert_eq!(pipeline.scalar(SHADOWS_LEFT).await, 0);
    let order = api.json("/orders/1").await;
    assert_eq!(order["customer_id"], 10, "{order}");
    let listed = api.json("/orders?limit=100").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 20, "{listed}");
    api.assert_status("GET", "/customers/10/orders", StatusCode::OK)
        .await;
}

/// A load that ends without its commit leaves no shadow and the live table
/// as it was: the same relation, its indexes and privileges. (A killed
/// load is `make chaos`'s kill-during-load: a backend in COPY FROM STDIN
/// ends only when its client sends or closes.)
#[tokio::test]
async fn a_first_load_that_never_commits_leaves_the_live_table_as_it_was() {
    let pipeline = TestPipeline::create().await;
    let api = Api::new(&pipeline, SHORT_WAITS).await;
    const LIVE_TABLE: &str = "SELECT ('public.orders'::regclass::oid::bigint
        + (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'orders'))
        * CASE WHEN has_table_privilege('order_pipeline_orders', 'public.orders', 'INSERT') THEN 1 ELSE -1 END";
    let before = pipeline.scalar(LIVE_TABLE).await;

    // Rolled back: the reader stopped before the input was complete.
    let (batches, load) = hold_first_orders_load(&pipeline, 20).await;
    drop(batches);
    let (session, counts) = load.await.unwrap();
    assert!(counts.is_err(), "an incomplete input stores nothing");
    drop(session);
    assert_eq!(pipeline.scalar(SHADOWS_LEFT).await, 0);
    assert_eq!(pipeline.scalar(LIVE_TABLE).await, before);
    assert_eq!(pipeline.scalar("SELECT count(*) FROM orders").await, 0);
    api.assert_status("GET", "/orders/1", StatusCode::NOT_FOUND)
        .await;
    // The next first load finds nothing in its way.
    pipeline
        .bucket
        .put("incoming/orders.csv", "order_id,customer_id\n1,10\n")
        .await;
    pipeline.ingest_key("incoming/orders.csv").await;
    assert_eq!(api.json("/orders/1").await["customer_id"], 10);
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
