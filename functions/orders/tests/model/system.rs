//! The real pipeline the model is held against: files put in a LocalStack
//! bucket and ingested into a PostgreSQL database of the case's own, sales
//! through the orders router, and everything read back the way a reader
//! sees it (the tables, the analytics router, processed_orders.csv from the
//! bucket), in the model's own terms.

use std::collections::{BTreeMap, HashMap};

use axum::http::StatusCode;
use axum::Router;
use order_pipeline::config::PROCESSED_ORDERS_KEY;
use order_pipeline::ingest::{IngestReport, IngestStatus};
use order_pipeline::postgres::PgStore;
use order_pipeline::storage::ObjectRef;
use pipeline_test_support::{
    get, post_json, send, test_authenticator, test_token_all, TestPipeline,
};
use serde_json::{json, Value};

use order_pipeline::domain::rules::{Origin, StoredBarcode, StoredOrder};
use order_pipeline::domain::{Barcode, CustomerId, OrderId};

use super::rules::{reported, without_ids_and_times, Outcome, View};

/// The ways a load can go. Each case runs on every one of them; the first
/// file of each kind is a first load (straight into the empty table), every
/// other a later load (staged and merged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadPath {
    /// The store as the functions build it.
    Default,
    /// A repeat filter so small that a first load checks nearly every row
    /// exactly, and a sort budget that spills a run every few barcodes.
    TinyFilter,
    /// Every later load that at least doubles its table drops the table's
    /// indexes and rebuilds them.
    Bulk,
}

pub const LOAD_PATHS: [LoadPath; 3] = [LoadPath::Default, LoadPath::TinyFilter, LoadPath::Bulk];

impl LoadPath {
    /// The store set up to load this way.
    pub fn configure(self, store: PgStore) -> PgStore {
        match self {
            LoadPath::Default => store,
            LoadPath::TinyFilter => store.with_repeat_filter_bytes(8).with_sort_budget(512),
            LoadPath::Bulk => store.with_bulk_load_min_rows(0),
        }
    }
}

/// What ingesting one delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Outcome(Outcome),
    AlreadyIngested,
}

pub struct System {
    pipeline: TestPipeline,
    analytics: Router,
    orders: Router,
    token: String,
    /// Each upload's key and S3 version id, by upload label.
    uploads: Vec<(String, String)>,
    /// The upload label of each ledger row a load created.
    labels: HashMap<i64, usize>,
}

impl System {
    pub async fn create(path: LoadPath) -> Self {
        let pipeline = TestPipeline::create_with_store(|store| path.configure(store)).await;
        let analytics =
            pipeline_api::analytics::router(pipeline_api::analytics::AnalyticsState::new(
                pipeline.db.store(),
                test_authenticator(),
                pipeline.bucket.client.clone(),
                pipeline.bucket.name.clone(),
            ));
        let orders = pipeline_api::orders::router(pipeline_api::state::ApiState::new(
            pipeline.db.store(),
            test_authenticator(),
        ));
        Self {
            pipeline,
            analytics,
            orders,
            token: test_token_all(),
            uploads: Vec::new(),
            labels: HashMap::new(),
        }
    }

    /// Puts `body` at `key` and ingests the new version; returns its label.
    pub async fn upload(&mut self, key: &str, body: String) -> (usize, Delivered) {
        let version_id = self
            .pipeline
            .bucket
            .put(key, body)
            .await
            .expect("the test bucket is versioned");
        let label = self.uploads.len();
        self.uploads.push((key.to_owned(), version_id));
        let report = self.deliver(label).await;
        if let Some(id) = report.ingestion_id {
            self.labels.insert(id, label);
        }
        (label, delivered(&report))
    }

    /// Delivers the event of upload `label` again.
    pub async fn redeliver(&mut self, label: usize) -> Delivered {
        delivered(&self.deliver(label).await)
    }

    async fn deliver(&self, label: usize) -> IngestReport {
        let (key, version_id) = &self.uploads[label];
        let mut object = ObjectRef::new(&self.pipeline.bucket.name, key);
        object.version_id = Some(version_id.clone());
        self.pipeline
            .ingestor
            .ingest(&object)
            .await
            .unwrap_or_else(|e| panic!("ingesting {key} (upload {label}): {e}"))
    }

    pub fn uploads(&self) -> usize {
        self.uploads.len()
    }

    /// `POST /orders`: the new order's id and its barcodes (by code), or
    /// `None` on a 409 (too few unused).
    pub async fn sell(&self, customer_id: i64, tickets: usize) -> Option<(i64, Vec<String>)> {
        let response = send(
            &self.orders,
            post_json(
                "/orders",
                &self.token,
                &json!({"customer_id": customer_id, "tickets": tickets}),
                None,
            ),
        )
        .await;
        match response.status {
            StatusCode::CREATED => {
                let body = response.json();
                let mut codes: Vec<String> = body["barcodes"]
                    .as_array()
                    .expect("an order lists its barcodes")
                    .iter()
                    .map(|b| b["barcode"].as_str().expect("a code").to_owned())
                    .collect();
                codes.sort();
                Some((body["order_id"].as_i64().expect("an order id"), codes))
            }
            StatusCode::CONFLICT => None,
            other => panic!("POST /orders answered {other}: {}", response.json()),
        }
    }

    /// Everything a reader sees now, in the model's terms.
    pub async fn view(&self) -> View {
        View {
            orders: self.stored_orders().await,
            barcodes: self.stored_barcodes().await,
            customer_tickets: self.customer_tickets().await,
            top_customers: self.top_customers().await,
            unused_barcodes: self.unused_barcodes().await,
            waiting_barcodes: self.waiting_barcodes().await,
            summary: self.summary().await,
            processed_orders_csv: self.processed_orders_csv().await,
        }
    }

    async fn rows(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        let client = self.pipeline.db.pool.get().await.expect("connection");
        client.query(sql, &[]).await.expect(sql)
    }

    fn origin(&self, ingestion_id: i64, line: i64) -> Origin {
        let upload = *self.labels.get(&ingestion_id).unwrap_or_else(|| {
            panic!("a row names ingestion {ingestion_id}, which no upload made")
        });
        Origin {
            file: upload,
            line: line as u64,
        }
    }

    async fn stored_orders(&self) -> BTreeMap<OrderId, StoredOrder> {
        self.rows("SELECT order_id, customer_id, ingestion_id, source_line FROM orders")
            .await
            .iter()
            .map(|row| {
                let origin = row
                    .get::<_, Option<i64>>(2)
                    .map(|id| self.origin(id, row.get(3)));
                (
                    OrderId::from_trusted(row.get(0)),
                    StoredOrder {
                        customer_id: CustomerId::from_trusted(row.get(1)),
                        origin,
                    },
                )
            })
            .collect()
    }

    async fn stored_barcodes(&self) -> BTreeMap<Barcode, StoredBarcode> {
        self.rows(
            "SELECT barcode, order_id, ingestion_id, source_line, sale_id IS NOT NULL FROM barcodes",
        )
        .await
        .iter()
        .map(|row| {
            (
                Barcode::from_trusted(row.get(0)),
                StoredBarcode {
                    order_id: row.get::<_, Option<i64>>(1).map(OrderId::from_trusted),
                    origin: self.origin(row.get(2), row.get(3)),
                    sold_by_sale: row.get(4),
                },
            )
        })
        .collect()
    }

    async fn customer_tickets(&self) -> BTreeMap<CustomerId, i64> {
        self.rows("SELECT customer_id, tickets FROM customer_tickets WHERE tickets > 0")
            .await
            .iter()
            .map(|row| (CustomerId::from_trusted(row.get(0)), row.get(1)))
            .collect()
    }

    async fn analytics(&self, uri: &str) -> Value {
        let response = send(&self.analytics, get(uri, Some(&self.token))).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{uri}: {:?}",
            response.body
        );
        response.json()
    }

    async fn top_customers(&self) -> Vec<(CustomerId, i64)> {
        let limit = super::rules::MAX_TOP_CUSTOMERS;
        self.analytics(&format!("/analytics/top-customers?limit={limit}"))
            .await
            .as_array()
            .expect("a list")
            .iter()
            .map(|c| {
                (
                    CustomerId::from_trusted(int(&c["customer_id"])),
                    int(&c["tickets"]),
                )
            })
            .collect()
    }

    /// Every unused code, page by page; the count must agree.
    async fn unused_barcodes(&self) -> Vec<Barcode> {
        let mut codes = Vec::new();
        let mut uri = "/analytics/unused-barcodes?limit=4".to_owned();
        loop {
            let page = self.analytics(&uri).await;
            codes.extend(
                page["barcodes"]
                    .as_array()
                    .expect("a list")
                    .iter()
                    .map(|c| Barcode::from_trusted(c.as_str().expect("a code").to_owned())),
            );
            match page["next_cursor"].as_str() {
                Some(cursor) => uri = format!("/analytics/unused-barcodes?limit=4&cursor={cursor}"),
                None => {
                    assert_eq!(
                        int(&page["count"]),
                        codes.len() as i64,
                        "the unused count disagrees with the codes listed"
                    );
                    return codes;
                }
            }
        }
    }

    /// `GET /problems/waiting-barcodes`, every page, with its count.
    async fn waiting_barcodes(&self) -> Vec<(Barcode, i64)> {
        let mut waiting = Vec::new();
        let mut uri = "/problems/waiting-barcodes?limit=4".to_owned();
        loop {
            let page = self.analytics(&uri).await;
            waiting.extend(page["items"].as_array().expect("a list").iter().map(|b| {
                (
                    Barcode::from_trusted(b["barcode"].as_str().expect("a code").to_owned()),
                    int(&b["order_id"]),
                )
            }));
            match page["next_cursor"].as_str() {
                Some(cursor) => uri = format!("/problems/waiting-barcodes?limit=4&cursor={cursor}"),
                None => {
                    assert_eq!(
                        int(&page["count"]),
                        waiting.len() as i64,
                        "the waiting count disagrees with the barcodes listed"
                    );
                    return waiting;
                }
            }
        }
    }

    async fn summary(&self) -> Value {
        without_ids_and_times(self.analytics("/analytics/summary").await)
    }

    /// processed_orders.csv from the bucket, after the export endpoint
    /// brought it up to date (a sale leaves it stale until then).
    async fn processed_orders_csv(&self) -> String {
        let response = send(
            &self.analytics,
            get("/exports/processed-orders.csv", Some(&self.token)),
        )
        .await;
        assert_eq!(response.status, StatusCode::FOUND, "{:?}", response.body);
        self.pipeline
            .bucket
            .get_text(PROCESSED_ORDERS_KEY)
            .await
            .expect("processed_orders.csv is published")
    }
}

fn delivered(report: &IngestReport) -> Delivered {
    match report.status {
        IngestStatus::Loaded => Delivered::Outcome(Outcome::Loaded {
            counts: report.counts,
            problems: reported(
                report
                    .problems
                    .iter()
                    .map(|p| (p.line, p.code, p.reason.clone())),
            ),
            first_without_barcodes: report
                .first_orders_without_barcodes
                .iter()
                .map(|o| o.line)
                .collect(),
        }),
        IngestStatus::Rejected => Delivered::Outcome(Outcome::Rejected),
        IngestStatus::AlreadyIngested => Delivered::AlreadyIngested,
        IngestStatus::Superseded => panic!("a versioned bucket never supersedes: {report:?}"),
    }
}

fn int(value: &Value) -> i64 {
    value
        .as_i64()
        .unwrap_or_else(|| panic!("not an integer: {value}"))
}
