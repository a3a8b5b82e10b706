//! The PostgreSQL adapter: connection pool, migrations, and every query the
//! functions run. Nothing outside this module writes SQL.

use std::pin::{pin, Pin};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::TryStreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{binary_copy::BinaryCopyInWriter, types::Type, NoTls};

use crate::config::DatabaseSettings;
use crate::domain::{
    Barcode, BarcodeRow, CustomerId, CustomerTickets, OrderId, OrderRow, ProcessedOrder,
};

mod embedded {
    refinery::embed_migrations!("../migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database migrations: {0}")]
    Migration(#[from] refinery::Error),
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(tokio_postgres::Error),
    #[error("the input stopped before its end; nothing was stored")]
    InputIncomplete,
    #[error("building the database pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
}

/// Builds the pool. Connections open lazily, so a cold start does not wait on
/// the database until the first query.
pub fn connect_pool(settings: &DatabaseSettings) -> Result<Pool, DbError> {
    let mut config: tokio_postgres::Config = settings.url.parse().map_err(DbError::BadUrl)?;
    config.connect_timeout(settings.connect_timeout);
    if config.get_application_name().is_none() {
        config.application_name("order-pipeline");
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(settings.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .build()?)
}

/// Applies every migration in `migrations/` that has not run yet.
pub async fn migrate(pool: &Pool) -> Result<usize, DbError> {
    let mut client = pool.get().await?;
    let client: &mut tokio_postgres::Client = &mut client;
    let report = embedded::migrations::runner().run_async(client).await?;
    Ok(report.applied_migrations().len())
}

/// What the file reader sends to the loader. Only an explicit `Complete`
/// lets the load commit, so a reader that fails half-way stores nothing.
#[derive(Debug)]
pub enum Batch<R> {
    Rows(Vec<R>),
    Complete,
}

/// What loading one file changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadCounts {
    /// Valid rows read from the file.
    pub rows: u64,
    /// Rows that added or changed a stored order or barcode.
    pub stored: u64,
    /// Rows that repeat a barcode or order seen earlier in the same file.
    pub duplicates_in_file: u64,
    /// Rows whose barcode or order was already stored (first occurrence wins).
    pub already_stored: u64,
}

/// Typed access to the order store.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl PgStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// Loads a stream of order batches in one transaction; the first
    /// occurrence of an order_id wins.
    pub async fn load_orders(
        &self,
        batches: mpsc::Receiver<Batch<OrderRow>>,
    ) -> Result<LoadCounts, DbError> {
        self.load_staged(batches).await
    }

    /// Loads a stream of barcode batches in one transaction. The first
    /// occurrence of a barcode wins; a stored unsold barcode becomes sold when
    /// a later file assigns it to an order, but a sold one never moves.
    pub async fn load_barcodes(
        &self,
        batches: mpsc::Receiver<Batch<BarcodeRow>>,
    ) -> Result<LoadCounts, DbError> {
        self.load_staged(batches).await
    }

    /// Streams rows into a temporary table with binary COPY (PostgreSQL's
    /// fastest path in), then merges them with one SQL statement, since COPY
    /// itself cannot skip conflicts. All in one transaction: all or nothing.
    async fn load_staged<R: StagedRow>(
        &self,
        mut batches: mpsc::Receiver<Batch<R>>,
    ) -> Result<LoadCounts, DbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.batch_execute(R::CREATE_STAGING).await?;
        let sink = tx.copy_in(R::COPY_IN).await?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, R::COLUMN_TYPES));
        let mut rows = 0u64;
        loop {
            match batches.recv().await {
                Some(Batch::Rows(batch)) => {
                    for row in &batch {
                        row.write(writer.as_mut()).await?;
                    }
                    rows += batch.len() as u64;
                }
                Some(Batch::Complete) => break,
                // The reader stopped without saying the input is complete:
                // dropping the transaction rolls back everything staged.
                None => return Err(DbError::InputIncomplete),
            }
        }
        writer.finish().await?;
        let merged = tx.query_one(R::MERGE, &[]).await?;
        tx.commit().await?;
        let distinct = merged.get::<_, i64>(0) as u64;
        let stored = merged.get::<_, i64>(1) as u64;
        Ok(LoadCounts {
            rows,
            stored,
            duplicates_in_file: rows - distinct,
            already_stored: distinct - stored,
        })
    }

    /// Customers with the most tickets, ties broken by the lower customer_id.
    pub async fn top_customers(&self, limit: i64) -> Result<Vec<CustomerTickets>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT o.customer_id, count(*) AS tickets
                 FROM barcodes b JOIN orders o ON o.order_id = b.order_id
                 GROUP BY o.customer_id
                 ORDER BY tickets DESC, o.customer_id ASC
                 LIMIT $1",
                &[&limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| CustomerTickets {
                customer_id: CustomerId::from_trusted(row.get(0)),
                tickets: row.get(1),
            })
            .collect())
    }

    /// Streams every order that has barcodes, ordered by customer then order,
    /// to `sink` one at a time so memory stays flat whatever the table size.
    pub async fn for_each_processed_order<F, E>(&self, mut sink: F) -> Result<u64, E>
    where
        F: FnMut(ProcessedOrder) -> Result<(), E>,
        E: From<DbError>,
    {
        let client = self.pool.get().await.map_err(DbError::from)?;
        let stream = client
            .query_raw(
                "SELECT o.customer_id, o.order_id, array_agg(b.barcode ORDER BY b.seq)
                 FROM orders o JOIN barcodes b ON b.order_id = o.order_id
                 GROUP BY o.customer_id, o.order_id
                 ORDER BY o.customer_id, o.order_id",
                std::iter::empty::<i64>(),
            )
            .await
            .map_err(DbError::from)?;
        let mut stream = pin!(stream);
        let mut written = 0;
        while let Some(row) = stream.try_next().await.map_err(DbError::from)? {
            let barcodes: Vec<String> = row.get(2);
            sink(ProcessedOrder {
                customer_id: CustomerId::from_trusted(row.get(0)),
                order_id: OrderId::from_trusted(row.get(1)),
                barcodes: barcodes.into_iter().map(Barcode::from_trusted).collect(),
            })?;
            written += 1;
        }
        Ok(written)
    }
}

/// A row kind that can be bulk-loaded through a staging table. `MERGE`
/// returns two counts: distinct keys staged, and rows stored.
trait StagedRow: Send + 'static {
    const CREATE_STAGING: &'static str;
    const COPY_IN: &'static str;
    const COLUMN_TYPES: &'static [Type];
    const MERGE: &'static str;

    async fn write(
        &self,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> Result<(), tokio_postgres::Error>;
}

impl StagedRow for OrderRow {
    const CREATE_STAGING: &'static str =
        "CREATE TEMP TABLE staging_orders (line bigint, order_id bigint, customer_id bigint) ON COMMIT DROP";
    const COPY_IN: &'static str =
        "COPY staging_orders (line, order_id, customer_id) FROM STDIN BINARY";
    const COLUMN_TYPES: &'static [Type] = &[Type::INT8, Type::INT8, Type::INT8];
    const MERGE: &'static str = "WITH firsts AS (
             SELECT DISTINCT ON (order_id) order_id, customer_id, line
             FROM staging_orders ORDER BY order_id, line
         ), inserted AS (
             INSERT INTO orders (order_id, customer_id)
             SELECT order_id, customer_id FROM firsts ORDER BY line
             ON CONFLICT (order_id) DO NOTHING
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM firsts), (SELECT count(*) FROM inserted)";

    async fn write(
        &self,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> Result<(), tokio_postgres::Error> {
        let line = self.line as i64;
        writer
            .write(&[&line, &self.order_id.get(), &self.customer_id.get()])
            .await
    }
}

impl StagedRow for BarcodeRow {
    const CREATE_STAGING: &'static str =
        "CREATE TEMP TABLE staging_barcodes (line bigint, barcode text, order_id bigint) ON COMMIT DROP";
    const COPY_IN: &'static str =
        "COPY staging_barcodes (line, barcode, order_id) FROM STDIN BINARY";
    const COLUMN_TYPES: &'static [Type] = &[Type::INT8, Type::TEXT, Type::INT8];
    const MERGE: &'static str = "WITH firsts AS (
             SELECT DISTINCT ON (barcode) barcode, order_id, line
             FROM staging_barcodes ORDER BY barcode, line
         ), stored AS (
             INSERT INTO barcodes (barcode, order_id)
             SELECT barcode, order_id FROM firsts ORDER BY line
             ON CONFLICT (barcode) DO UPDATE SET order_id = EXCLUDED.order_id
                 WHERE barcodes.order_id IS NULL AND EXCLUDED.order_id IS NOT NULL
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM firsts), (SELECT count(*) FROM stored)";

    async fn write(
        &self,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> Result<(), tokio_postgres::Error> {
        let line = self.line as i64;
        let order_id = self.order_id.map(OrderId::get);
        writer
            .write(&[&line, &self.barcode.as_str(), &order_id])
            .await
    }
}
