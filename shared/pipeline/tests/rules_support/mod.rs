//! What the ingest rule tests share: the pipeline over a bucket in memory
//! (only PostgreSQL is needed), and checks every ingest makes.

use order_pipeline::config::PROCESSED_ORDERS_KEY;
use order_pipeline::domain::outcome::Severity;
use order_pipeline::ingest::IngestReport;
use pipeline_test_support::{MemoryBucket, TestPipeline};

/// A bucket in memory and a database of the test's own.
pub async fn fixture() -> TestPipeline<MemoryBucket> {
    TestPipeline::in_memory().await
}

/// What the rule tests do besides the shared fixture's basics.
pub trait RulesFixture {
    async fn ingest(&self, key: &str, body: impl Into<Vec<u8>>) -> IngestReport;
    async fn ingest_existing(&self, key: &str) -> IngestReport;
    async fn text(&self, sql: &str) -> Option<String>;
    async fn processed(&self) -> String;
    async fn assert_aggregates_consistent(&self);
}

impl RulesFixture for TestPipeline<MemoryBucket> {
    async fn ingest(&self, key: &str, body: impl Into<Vec<u8>>) -> IngestReport {
        self.bucket.put(key, body).await;
        self.ingest_existing(key).await
    }

    async fn ingest_existing(&self, key: &str) -> IngestReport {
        let report = self.ingest_key(key).await;
        self.assert_aggregates_consistent().await;
        report
    }

    async fn text(&self, sql: &str) -> Option<String> {
        let client = self.db.pool.get().await.unwrap();
        client.query_opt(sql, &[]).await.unwrap().map(|r| r.get(0))
    }

    async fn processed(&self) -> String {
        self.bucket.get_text(PROCESSED_ORDERS_KEY).await.unwrap()
    }

    /// The maintained aggregates must always equal a recount from scratch.
    async fn assert_aggregates_consistent(&self) {
        let client = self.db.pool.get().await.unwrap();
        let drift: i64 = client
            .query_one(
                "SELECT count(*) FROM (
                     SELECT customer_id, tickets FROM customer_tickets WHERE tickets > 0
                     EXCEPT
                     SELECT o.customer_id, count(*) FROM barcodes b JOIN orders o USING (order_id)
                     GROUP BY o.customer_id
                 ) d",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(drift, 0, "customer_tickets drifted from the barcodes");
        let row = client
            .query_one(
                "SELECT s.orders = (SELECT count(*) FROM orders),
                        s.barcodes = (SELECT count(*) FROM barcodes),
                        s.unused_barcodes = (SELECT count(*) FROM barcodes WHERE order_id IS NULL),
                        (SELECT sum(tickets) FROM customer_tickets) IS NOT DISTINCT FROM
                        (SELECT sum(c) FROM (SELECT count(*) c FROM barcodes b JOIN orders o USING (order_id)) x)
                        OR NOT EXISTS (SELECT 1 FROM customer_tickets)
                 FROM pipeline_stats s",
                &[],
            )
            .await
            .unwrap();
        for i in 0..4 {
            assert!(row.get::<_, bool>(i), "pipeline_stats column {i} drifted");
        }
    }
}

pub fn problem_lines(report: &IngestReport, severity: Severity) -> Vec<u64> {
    report
        .problems
        .iter()
        .filter(|p| p.severity == severity)
        .map(|p| p.line)
        .collect()
}
