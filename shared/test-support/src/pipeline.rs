//! A bucket and a database of a test's own, with the real ingestor over them:
//! the bucket in LocalStack, or in memory for tests that need only
//! PostgreSQL.

use order_pipeline::error_chain::ErrorChain;
use order_pipeline::ingest::{IngestReport, Ingestor};
use order_pipeline::postgres::roles::DatabaseRole;
use order_pipeline::postgres::PgStore;
use order_pipeline::storage::memory::MemoryStore;
use order_pipeline::storage::{ObjectRef, ObjectStore, S3Store};

use crate::{unique_name, TestBucket, TestDatabase};

/// A bucket and a database of a test's own, and the ingestor over them.
pub struct TestPipeline<B: PipelineBucket = TestBucket> {
    pub bucket: B,
    pub db: TestDatabase,
    pub ingestor: Ingestor<B::Store>,
}

/// A test's bucket: what its ingestor reads from and writes to.
pub trait PipelineBucket {
    type Store: ObjectStore;
    fn name(&self) -> &str;
}

impl PipelineBucket for TestBucket {
    type Store = S3Store;
    fn name(&self) -> &str {
        &self.name
    }
}

/// A bucket of a test's own in a [`MemoryStore`] (versioned, like the
/// template's bucket).
pub struct MemoryBucket {
    pub name: String,
    pub store: MemoryStore,
}

impl PipelineBucket for MemoryBucket {
    type Store = MemoryStore;
    fn name(&self) -> &str {
        &self.name
    }
}

impl MemoryBucket {
    /// Writes an object; returns its version id.
    pub async fn put(&self, key: &str, body: impl Into<Vec<u8>>) -> Option<String> {
        self.store.insert(&self.name, key, body.into()).1
    }

    /// The object's text, or `None` when it does not exist.
    pub async fn get_text(&self, key: &str) -> Option<String> {
        let body = self.store.get(&self.name, key)?;
        Some(String::from_utf8(body).expect("UTF-8 text"))
    }

    /// Deletes the object, as someone might behind the pipeline's back.
    pub async fn delete(&self, key: &str) {
        self.store.delete(&self.name, key);
    }
}

impl TestPipeline<MemoryBucket> {
    /// The pipeline over a bucket in memory: only PostgreSQL is needed.
    pub async fn in_memory() -> Self {
        Self::in_memory_with_store(|store| store).await
    }

    /// Like [`TestPipeline::in_memory`], with the store adjusted by `configure`.
    pub async fn in_memory_with_store(configure: impl FnOnce(PgStore) -> PgStore) -> Self {
        let bucket = MemoryBucket {
            name: unique_name("memory"),
            store: MemoryStore::versioned(),
        };
        let db = TestDatabase::create().await;
        let ingestor = Ingestor::new(bucket.store.clone(), configure(db.store()));
        Self {
            bucket,
            db,
            ingestor,
        }
    }
}

impl<B: PipelineBucket> TestPipeline<B> {
    /// Ingests an object already in the bucket; panics on a retryable error.
    pub async fn ingest_key(&self, key: &str) -> IngestReport {
        self.ingestor
            .ingest(&ObjectRef::new(self.bucket.name(), key))
            .await
            .unwrap_or_else(|e| panic!("ingesting {key}: {}", ErrorChain(&e)))
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        self.db.scalar(sql).await
    }

    /// One figure of the maintained totals (`pipeline_stats.<column>`).
    pub async fn stat(&self, column: &str) -> i64 {
        self.scalar(&format!("SELECT {column} FROM pipeline_stats"))
            .await
    }
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

    /// The sample data (with `extra_unused` unused barcodes) and two of each
    /// problem the Problems view lists: orders 1 and 2 claimed by other
    /// customers (incoming/conflicts.csv, which also brings order 600
    /// without barcodes, beside the sample's orders 7 and 8), and two barcodes
    /// waiting for orders 500 and 501 (incoming/waiting.csv); the sample
    /// already rejects two barcode copies.
    pub async fn with_every_problem(extra_unused: usize) -> Self {
        let pipeline = Self::with_sample_data(extra_unused).await;
        for (key, body) in [
            (
                "incoming/conflicts.csv",
                "order_id,customer_id\n1,99\n2,98\n600,20\n",
            ),
            (
                "incoming/waiting.csv",
                "barcode,order_id\n88888888801,500\n88888888802,501\n",
            ),
        ] {
            pipeline.bucket.put(key, body).await;
            pipeline.ingest_key(key).await;
        }
        pipeline
    }
}
