//! A bucket and a database of a test's own, with the real ingestor over them.

use order_pipeline::db::PgStore;
use order_pipeline::error_chain::ErrorChain;
use order_pipeline::ingest::{IngestReport, Ingestor};
use order_pipeline::roles::DatabaseRole;
use order_pipeline::storage::{ObjectRef, S3Store};

use crate::{TestBucket, TestDatabase};

/// A bucket and a database of a test's own, and the ingestor over them.
pub struct TestPipeline {
    pub bucket: TestBucket,
    pub db: TestDatabase,
    pub ingestor: Ingestor<S3Store>,
}

impl TestPipeline {
    pub async fn create() -> Self {
        Self::create_with_store(|store| store).await
    }

    /// Like [`TestPipeline::create`], with the store adjusted by `configure`.
    pub async fn create_with_store(configure: impl FnOnce(PgStore) -> PgStore) -> Self {
        let bucket = TestBucket::create().await;
        let db = TestDatabase::create().await;
        let ingestor = Ingestor::new(S3Store::new(bucket.client.clone()), configure(db.store()));
        Self {
            bucket,
            db,
            ingestor,
        }
    }

    /// Ingests an object already in the bucket; panics on a retryable error.
    pub async fn ingest_key(&self, key: &str) -> IngestReport {
        self.ingestor
            .ingest(&ObjectRef::new(&self.bucket.name, key))
            .await
            .unwrap_or_else(|e| panic!("ingesting {key}: {}", ErrorChain(&e)))
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        self.db.scalar(sql).await
    }

    /// An ingestor over the same bucket, connected as `role`'s login user.
    pub async fn ingestor_as(&self, role: DatabaseRole) -> Ingestor<S3Store> {
        Ingestor::new(
            S3Store::new(self.bucket.client.clone()),
            self.db.store_as(role).await,
        )
    }
}

impl TestPipeline {
    /// The pipeline with data/orders.csv and data/barcodes.csv ingested,
    /// plus `extra_unused` unused barcodes (9990000000000 and up) in
    /// incoming/unused.csv, all through the real ingest path.
    pub async fn with_sample_data(extra_unused: usize) -> Self {
        let pipeline = Self::create().await;
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");
        for name in ["orders.csv", "barcodes.csv"] {
            let body = std::fs::read(format!("{root}/{name}")).expect("sample data");
            let key = format!("incoming/{name}");
            pipeline.bucket.put(&key, body).await;
            pipeline.ingest_key(&key).await;
        }
        if extra_unused > 0 {
            let mut body = String::from("barcode,order_id\n");
            for i in 0..extra_unused {
                body.push_str(&format!("{},\n", 9_990_000_000_000u64 + i as u64));
            }
            pipeline.bucket.put("incoming/unused.csv", body).await;
            pipeline.ingest_key("incoming/unused.csv").await;
        }
        pipeline
    }
}
