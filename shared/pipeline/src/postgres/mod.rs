//! The PostgreSQL adapter: connection pool, migrations, and every query the
//! functions run. Nothing outside this module writes SQL.

use std::pin::{pin, Pin};

use deadpool_postgres::{ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use futures_util::{SinkExt, TryStreamExt};
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::config::{DatabaseSettings, SessionLimits};
use crate::csv_input::RejectedRow;
use crate::domain::{
    Barcode, BarcodeRow, CustomerId, CustomerTickets, OrderId, OrderRow, ProcessedOrder,
};
use crate::seen::{SeenFilter, DEFAULT_FILTER_BYTES};

mod copy_buffer;
mod external_sort;
pub mod migrations;
pub mod roles;
pub mod secret;
mod sold_barcodes;
pub mod tls;
pub mod transaction;

use copy_buffer::CopyBuffer;
use external_sort::ExternalSorter;
use sold_barcodes::{BarcodesByOrder, SoldBarcode};
use transaction::Transaction;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {}", postgres_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database migrations: {0}")]
    Migration(#[from] refinery::Error),
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(tokio_postgres::Error),
    #[error("the input stopped before its end; nothing was stored")]
    InputIncomplete,
    #[error("building the database pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Writing a first load's local temporary files (the export, its sort
    /// runs, the ticket totals) failed.
    #[error("writing {what}: {source}")]
    Export {
        what: &'static str,
        source: std::io::Error,
    },
}

impl DbError {
    /// Wraps an I/O error of the local temporary file that holds `what`.
    fn export(what: &'static str) -> impl Fn(std::io::Error) -> DbError + Copy {
        move |source| DbError::Export { what, source }
    }
}

/// The server's own message (severity, text, detail, hint) when there is
/// one: tokio-postgres alone says only "db error".
fn postgres_detail(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => db.to_string(),
        None => err.to_string(),
    }
}

/// Builds the pool. Connections open lazily, so a cold start does not wait on
/// the database until the first query.
pub fn connect_pool(settings: &DatabaseSettings) -> Result<Pool, DbError> {
    build_pool(settings, None)
}

/// The API functions' pool: every connection starts with `limits` in
/// force, so a request never waits on a load longer than the lock timeout.
pub fn connect_api_pool(
    settings: &DatabaseSettings,
    limits: &SessionLimits,
) -> Result<Pool, DbError> {
    build_pool(settings, Some(limits))
}

fn build_pool(
    settings: &DatabaseSettings,
    limits: Option<&SessionLimits>,
) -> Result<Pool, DbError> {
    let mut config: tokio_postgres::Config = settings.url.parse().map_err(DbError::BadUrl)?;
    config.connect_timeout(settings.connect_timeout);
    if config.get_application_name().is_none() {
        config.application_name("order-pipeline");
    }
    if let Some(limits) = limits {
        let options = match config.get_options() {
            Some(given) => format!("{given} {}", limits.startup_options()),
            None => limits.startup_options(),
        };
        config.options(&options);
    }
    let manager = tls::manager(
        config,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    )?;
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

/// A big table that bulk loads (a first load into it, a load that at least
/// doubles it) write as a shadow copy without indexes, build the indexes on
/// it once (one sort beats maintaining a B-tree row by row), and swap in
/// just before the commit: API readers keep reading the committed table
/// meanwhile instead of waiting on the load. DDL needs the table's owner,
/// which the ingest role is not: the owner's functions of
/// migrations/V6__shadow_loads.sql run it, and only it.
struct LoadTable {
    table: &'static str,
    /// Creates the shadow (a copy of the table's rows, no indexes) and puts
    /// its schema first in the load's search_path, so the load's SQL needs
    /// no change.
    shadow: &'static str,
    build: &'static str,
    swap: &'static str,
}

const ORDERS_TABLE: LoadTable = LoadTable {
    table: "orders",
    shadow: "SELECT begin_shadow_load('orders'); SET LOCAL search_path = pipeline_load, public;",
    build: "SELECT build_load_indexes('orders');",
    swap: "SELECT swap_in_shadow_load('orders');",
};

const BARCODES_TABLE: LoadTable = LoadTable {
    table: "barcodes",
    shadow: "SELECT begin_shadow_load('barcodes'); SET LOCAL search_path = pipeline_load, public;",
    build: "SELECT build_load_indexes('barcodes');",
    swap: "SELECT swap_in_shadow_load('barcodes');",
};

/// Reports the later rows of a repeated order_id, from a temporary `ranked`
/// table of (line, order_id, customer_id, first_line, first_customer).
const ORDER_REPEATS_TO_PROBLEMS: &str = "
    INSERT INTO problems (line, severity, duplicate, field, value, reason, raw)
    SELECT line,
           CASE WHEN customer_id = first_customer THEN 'ignored' ELSE 'rejected' END,
           true, 'customer_id', customer_id::text,
           CASE WHEN customer_id = first_customer
                THEN format('order %s repeats line %s with the same customer; ignored', order_id, first_line)
                ELSE format('order %s already belongs to customer %s (line %s); a conflicting customer is rejected', order_id, first_customer, first_line)
           END,
           order_id || ',' || customer_id
    FROM ranked WHERE line <> first_line;";

/// Reports the later copies of a repeated barcode, from a temporary `ranked`
/// table of (line, barcode, order_id, first_line).
const BARCODE_REPEATS_TO_PROBLEMS: &str = "
    INSERT INTO problems (line, severity, duplicate, field, value, reason, raw)
    SELECT line, 'rejected', true, 'barcode', barcode,
           format('duplicate barcode: first seen on line %s; the first occurrence wins', first_line),
           barcode || ',' || coalesce(order_id::text, '')
    FROM ranked WHERE line <> first_line;";

/// How many orders without barcodes a load reports line by line (the count
/// covers them all).
const ORDERS_WITHOUT_BARCODES_REPORTED: usize = 100;

/// Reports orders without barcodes from `{first_lines}`, a relation (with
/// its alias) of (line, order_id, customer_id) already cut to the lines to
/// report.
const ORDERS_WITHOUT_BARCODES_TO_PROBLEMS: &str = "
    INSERT INTO problems (line, severity, field, value, reason, raw)
    SELECT line, 'warning', 'order_id', order_id::text,
           'order has no barcodes (yet): stored, but left out of processed_orders.csv and ticket counts',
           order_id || ',' || customer_id
    FROM {first_lines};";

/// Adds the tickets of a temporary `known` table of (customer_id, tickets)
/// to the customers' totals.
const KNOWN_TO_CUSTOMER_TICKETS: &str = "
    INSERT INTO customer_tickets (customer_id, tickets)
    SELECT customer_id, tickets FROM known
    ON CONFLICT (customer_id) DO UPDATE
        SET tickets = customer_tickets.tickets + EXCLUDED.tickets;";

/// Collects the accepted barcodes of orders not known yet into a temporary
/// `orphans` table and reports the first of them. `{accepted}` is the
/// relation of accepted rows (barcode, order_id, line).
const ORPHANS_TO_PROBLEMS: &str = "
    CREATE TEMP TABLE orphans ON COMMIT DROP AS
        SELECT a.line, a.barcode, a.order_id FROM {accepted} a
        WHERE a.order_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = a.order_id);
    INSERT INTO problems (line, severity, field, value, reason, raw)
    SELECT line, 'warning', 'order_id', order_id::text,
           format('order %s is not known yet; the barcode is stored and counts once the order arrives', order_id),
           barcode || ',' || order_id
    FROM (SELECT line, barcode, order_id FROM orphans ORDER BY line LIMIT 100) first_lines;";

/// The export query behind processed_orders.csv: every barcode of a known
/// order, by order_id, the barcodes of an order together and in file order.
/// A first barcodes load writes the same order from its own stream.
const PROCESSED_ORDERS_QUERY: &str = "
    SELECT o.customer_id, o.order_id, b.barcode
    FROM orders o JOIN barcodes b ON b.order_id = o.order_id
    ORDER BY o.order_id, b.ingestion_id, b.source_line";

/// Settings for the export: it reads every order and barcode, so
/// sequential scans and one sort beat walking the order_id index into a heap
/// in barcode order, and worker processes sharing the join and sort beat one.
/// JIT compiling it took longer (0.2 s) than it saved.
const EXPORT_SETTINGS: &str = "
    SET LOCAL work_mem = '256MB';
    SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off;
    SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0.001;
    SET LOCAL jit = off;";

/// The accepted rows of a first barcodes load: the whole table.
const FIRST_LOAD_ACCEPTED: &str =
    "(SELECT barcode, order_id, source_line AS line, false AS sold_later FROM barcodes)";

/// Where the export of a first load writes the orders it streams.
pub type ExportSink<'a> = dyn FnMut(ProcessedOrder) -> std::io::Result<()> + Send + 'a;

/// Rows the direct load holds back for the staging table (flagged repeats
/// and rejected lines) before it pauses the COPY to write them: bounds memory
/// on files full of bad rows.
const SIDE_ROWS_MAX: usize = 16 * 1024;
const SIDE_BYTES_MAX: usize = 8 << 20;

/// Memory for the sold barcodes a first load sorts by order before it
/// spills a run to a temporary file (about a quarter of a million barcodes).
const SOLD_SORT_BUDGET: usize = 16 << 20;
/// Memory for the (customer, tickets) pairs sorted by customer.
const TOTALS_SORT_BUDGET: usize = 4 << 20;
/// Customers whose tickets a first load sums in memory before it hands the
/// sums to the sorter (about 4 MB): a million orders' customers fit.
const TOTALS_HELD: usize = 128 * 1024;
/// A later load goes into bulk mode only when it brings more rows than this
/// (besides at least doubling the table): below that, maintaining the
/// indexes costs less than rebuilding them.
const BULK_LOAD_MIN_ROWS: i64 = 10_000;

/// What the file reader sends to the loader: valid rows and rejected ones go
/// down the same stream (rejections are staged too, for the rejects file).
/// Only an explicit `Complete` lets the load commit, so a reader that fails
/// half-way stores nothing.
#[derive(Debug)]
pub enum Batch<R> {
    Rows(Vec<Result<R, RejectedRow>>),
    Complete,
}

/// Serialises merges into the shared tables, so that two files ingested at
/// once give the same result as one after the other. Staging (the bulk of
/// the work) still runs in parallel.
pub const MERGE_LOCK: i64 = 0x6f72_6465_7273; // "orders"
/// Serialises publishers of processed_orders.csv, so an older snapshot never
/// overwrites a newer one.
pub const PUBLISH_LOCK: i64 = 0x7075_626c_6973; // "publis"

/// What loading one file did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadCounts {
    /// Data lines read (valid or not).
    pub rows_read: u64,
    /// Rows that added or changed a stored order or barcode.
    pub accepted: u64,
    /// Rows rejected: invalid values, duplicate barcodes, conflicting orders.
    pub rejected: u64,
    /// Rows repeating a barcode or order seen before (a subset of rejected
    /// for barcodes; same-customer order repeats are ignored, not rejected).
    pub duplicates: u64,
    /// Accepted rows worth knowing about: orders without barcodes, barcodes
    /// of orders not known yet.
    pub warnings: u64,
}

/// One reported problem with a line of an input file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub line: u64,
    /// `rejected` (not stored), `ignored` (a no-op repeat) or `warning` (stored).
    pub severity: String,
    pub field: String,
    pub value: String,
    pub reason: String,
}

/// The identity of one object version: the idempotency key of an ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub bucket: String,
    pub key: String,
    pub etag: String,
    pub version_id: String,
}

impl ObjectVersion {
    /// The ledger's idempotency key, as query parameters $1 to $4.
    fn key_params(&self) -> [&(dyn ToSql + Sync); 4] {
        [&self.bucket, &self.key, &self.etag, &self.version_id]
    }
}

/// The outcome of claiming a version's ledger row: for a load
/// ([`PgStore::begin_ingestion`]) or a whole-file rejection
/// ([`PgStore::begin_rejection`]).
pub enum Claim<S> {
    /// The row is this session's to finish.
    Claimed(S),
    /// Another delivery finished the version already; its outcome stands.
    Final { ingestion_id: i64, status: String },
}

/// A whole-file rejection being recorded (see [`PgStore::begin_rejection`]).
pub struct Rejection {
    tx: Transaction,
    ingestion_id: i64,
}

impl Rejection {
    pub fn ingestion_id(&self) -> i64 {
        self.ingestion_id
    }

    /// Makes the rejection final. Call once its report is written.
    pub async fn commit(self) -> Result<(), DbError> {
        self.tx.end("COMMIT").await
    }
}

/// What the ledger records when a load commits.
#[derive(Debug, Clone)]
pub struct LedgerEntry {
    pub kind: &'static str,
    pub counts: LoadCounts,
    pub report_key: String,
    pub rejects_key: Option<String>,
    pub duration_ms: i64,
}

/// Current totals, kept in step with every load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub orders: i64,
    pub barcodes: i64,
    pub unused_barcodes: i64,
    pub rejected_rows: i64,
    pub data_version: i64,
}

/// Typed access to the order store.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    repeat_filter_bytes: usize,
    sort_budget: usize,
    bulk_load_min_rows: i64,
}

impl PgStore {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            repeat_filter_bytes: DEFAULT_FILTER_BYTES,
            sort_budget: SOLD_SORT_BUDGET,
            bulk_load_min_rows: BULK_LOAD_MIN_ROWS,
        }
    }

    /// Sizes the filter that spots repeated keys during a first load. A tiny
    /// one flags nearly every row, which tests use to drive the exact check.
    pub fn with_repeat_filter_bytes(mut self, bytes: usize) -> Self {
        self.repeat_filter_bytes = bytes;
        self
    }

    /// Sizes the memory a first barcodes load sorts in before it spills a
    /// run. A tiny one spills a run every few rows, which tests use to
    /// drive the merge of many runs.
    pub fn with_sort_budget(mut self, bytes: usize) -> Self {
        self.sort_budget = bytes;
        self
    }

    /// Sets how many rows a later load must bring, more than, to go into
    /// bulk mode (it must also at least double its table). Zero puts every
    /// such load there, which tests use to drive bulk mode with a few rows.
    pub fn with_bulk_load_min_rows(mut self, rows: i64) -> Self {
        self.bulk_load_min_rows = rows;
        self
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

    /// Opens the load transaction and claims the object version in the
    /// ledger. A concurrent delivery of the same version waits here until the
    /// first one commits (then finds it done) or rolls back (then loads it).
    pub async fn begin_ingestion(
        &self,
        version: &ObjectVersion,
    ) -> Result<Claim<Box<LoadSession>>, DbError> {
        // Sorting and hashing millions of staged rows wants more than the
        // default 4 MB; this is server memory, for this transaction only.
        // JIT compiling costs more than it saves on these one-pass queries
        // (up to 0.2 s each, measured on the export).
        let tx = Transaction::begin(
            &self.pool,
            "BEGIN; SET LOCAL work_mem = '256MB'; SET LOCAL maintenance_work_mem = '512MB';
             SET LOCAL jit = off",
        )
        .await?;
        let claimed = tx
            .client()
            .query_opt(
                "INSERT INTO ingestions (bucket, key, etag, version_id, status)
                 VALUES ($1, $2, $3, $4, 'loading')
                 ON CONFLICT (bucket, key, etag, version_id) DO UPDATE
                     SET status = 'loading', attempts = ingestions.attempts + 1,
                         started_at = now(), error = NULL
                     WHERE ingestions.status = 'failed'
                 RETURNING id",
                &version.key_params(),
            )
            .await?;
        settle_claim(tx, claimed, version, |tx, ingestion_id| {
            Box::new(LoadSession {
                tx,
                ingestion_id,
                deltas: Deltas::default(),
                repeat_filter_bytes: self.repeat_filter_bytes,
                sort_budget: self.sort_budget,
                bulk_load_min_rows: self.bulk_load_min_rows,
                exported: None,
                shadowed: None,
            })
        })
        .await
    }

    /// Starts recording that a version was rejected whole (the content
    /// decided it: nothing of it is stored). The ledger row is claimed in a
    /// transaction that [`Rejection::commit`] ends once the report is
    /// written, so a final outcome never exists without its report. Only a
    /// new or `failed` row can become `rejected`: a concurrent delivery that
    /// already finished the version keeps its outcome.
    pub async fn begin_rejection(
        &self,
        version: &ObjectVersion,
        reason: &str,
        report_key: &str,
    ) -> Result<Claim<Rejection>, DbError> {
        let tx = Transaction::begin(&self.pool, "BEGIN").await?;
        let [bucket, key, etag, version_id] = version.key_params();
        let claimed = tx
            .client()
            .query_opt(
                "INSERT INTO ingestions (bucket, key, etag, version_id, status, error, report_key, finished_at)
                 VALUES ($1, $2, $3, $4, 'rejected', $5, $6, now())
                 ON CONFLICT (bucket, key, etag, version_id) DO UPDATE
                     SET status = 'rejected', error = EXCLUDED.error,
                         report_key = EXCLUDED.report_key, finished_at = now()
                     WHERE ingestions.status = 'failed'
                 RETURNING id",
                &[bucket, key, etag, version_id, &reason, &report_key],
            )
            .await?;
        settle_claim(tx, claimed, version, |tx, ingestion_id| Rejection {
            tx,
            ingestion_id,
        })
        .await
    }

    /// Records, outside any load transaction, that the last attempt at a
    /// version failed for a reason worth retrying. Never touches a finished
    /// row: when a concurrent delivery loaded or rejected the version after
    /// this attempt rolled back, its outcome stands and `None` is returned.
    pub async fn record_failure(
        &self,
        version: &ObjectVersion,
        error: &str,
    ) -> Result<Option<i64>, DbError> {
        let client = self.pool.get().await?;
        let [bucket, key, etag, version_id] = version.key_params();
        let row = client
            .query_opt(
                "INSERT INTO ingestions (bucket, key, etag, version_id, status, error, finished_at)
                 VALUES ($1, $2, $3, $4, 'failed', $5, now())
                 ON CONFLICT (bucket, key, etag, version_id) DO UPDATE
                     SET error = EXCLUDED.error, finished_at = now()
                     WHERE ingestions.status = 'failed'
                 RETURNING id",
                &[bucket, key, etag, version_id, &error],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Customers with the most tickets, ties broken by the lower customer_id.
    /// Reads the maintained aggregate, never the barcode table.
    pub async fn top_customers(&self, limit: i64) -> Result<Vec<CustomerTickets>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT customer_id, tickets FROM customer_tickets
                 WHERE tickets > 0
                 ORDER BY tickets DESC, customer_id ASC
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

    pub async fn totals(&self) -> Result<Totals, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT orders, barcodes, unused_barcodes, rejected_rows, data_version FROM pipeline_stats",
                &[],
            )
            .await?;
        Ok(Totals {
            orders: row.get(0),
            barcodes: row.get(1),
            unused_barcodes: row.get(2),
            rejected_rows: row.get(3),
            data_version: row.get(4),
        })
    }

    /// Orders that have no barcodes: stored, but not in processed_orders.csv.
    /// Scans; for summaries, not for request paths.
    pub async fn orders_without_barcodes(&self) -> Result<i64, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM orders o
                 WHERE NOT EXISTS (SELECT 1 FROM barcodes b WHERE b.order_id = o.order_id)",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Starts publishing processed_orders.csv: takes the publish lock and
    /// tells whether the published file is behind the data.
    pub async fn begin_publish(&self, destination: &str) -> Result<PublishSession, DbError> {
        let tx = Transaction::begin(&self.pool, &format!("BEGIN; {EXPORT_SETTINGS}")).await?;
        tx.client()
            .execute("SELECT pg_advisory_xact_lock($1)", &[&PUBLISH_LOCK])
            .await?;
        let row = tx
            .client()
            .query_one(
                "SELECT s.output_version, p.data_version, p.etag
                 FROM pipeline_stats s LEFT JOIN published_outputs p ON p.destination = $1",
                &[&destination],
            )
            .await?;
        Ok(PublishSession {
            tx,
            destination: destination.to_owned(),
            data_version: row.get(0),
            published_version: row.get(1),
            published_etag: row.get(2),
        })
    }
}

/// Ends a claim on a version's ledger row. `claimed` is what the claiming
/// statement returned: the row's id when this transaction took the row
/// (`session` then owns the transaction), nothing when a conflicting row was
/// already final (then its outcome is read and the transaction rolled back).
async fn settle_claim<S>(
    tx: Transaction,
    claimed: Option<tokio_postgres::Row>,
    version: &ObjectVersion,
    session: impl FnOnce(Transaction, i64) -> S,
) -> Result<Claim<S>, DbError> {
    if let Some(row) = claimed {
        return Ok(Claim::Claimed(session(tx, row.get(0))));
    }
    let row = tx
        .client()
        .query_one(
            "SELECT id, status FROM ingestions
             WHERE bucket = $1 AND key = $2 AND etag = $3 AND version_id = $4",
            &version.key_params(),
        )
        .await?;
    tx.end("ROLLBACK").await?;
    Ok(Claim::Final {
        ingestion_id: row.get(0),
        status: row.get(1),
    })
}

/// Barcode rows a load accepted: new ones (some unsold), and stored unsold
/// ones it sold.
#[derive(Debug, Default, Clone, Copy)]
struct AcceptedBarcodes {
    inserted: i64,
    inserted_unused: i64,
    sold_later: i64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Deltas {
    orders: i64,
    barcodes: i64,
    unused: i64,
    /// Tickets that moved: processed_orders.csv changes only then.
    tickets: i64,
}

/// One file's load: a transaction on a dedicated connection. Dropping it
/// without [`LoadSession::commit`] rolls everything back, whatever happened.
pub struct LoadSession {
    tx: Transaction,
    ingestion_id: i64,
    deltas: Deltas,
    repeat_filter_bytes: usize,
    sort_budget: usize,
    bulk_load_min_rows: i64,
    /// Orders a first load exported inside its transaction, if it did.
    exported: Option<u64>,
    /// The table this load writes as a shadow, swapped in at the commit.
    shadowed: Option<&'static LoadTable>,
}

impl LoadSession {
    fn client(&self) -> &Object {
        self.tx.client()
    }

    pub fn ingestion_id(&self) -> i64 {
        self.ingestion_id
    }

    /// The orders written to the export sink of [`LoadSession::load_barcodes`],
    /// when this load wrote the export itself (a first load); `None` when
    /// processed_orders.csv has to be regenerated after the commit.
    pub fn exported(&self) -> Option<u64> {
        self.exported
    }

    /// Stages and merges an orders file. The first row for an order_id wins;
    /// a repeat with the same customer is a no-op, with another customer a
    /// rejected conflict; stored orders are never rewritten.
    pub async fn load_orders(
        &mut self,
        batches: mpsc::Receiver<Batch<OrderRow>>,
    ) -> Result<LoadCounts, DbError> {
        if self.begin_direct(&ORDERS_TABLE).await? {
            return self.load_orders_direct(batches).await;
        }
        let rows_read = self.stage(batches).await?;
        let client = self.client();
        // One sort finds both the first row of each order and its repeats.
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE ranked ON COMMIT DROP AS
                     SELECT line, order_id, customer_id,
                            first_value(line) OVER w AS first_line,
                            first_value(customer_id) OVER w AS first_customer
                     FROM staging WHERE reason IS NULL
                     WINDOW w AS (PARTITION BY order_id ORDER BY line);
                 {ORDER_REPEATS_TO_PROBLEMS}"
            ))
            .await?;
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MERGE_LOCK])
            .await?;
        client
            .batch_execute(
                "CREATE TEMP TABLE checked ON COMMIT DROP AS
                     SELECT r.order_id, r.customer_id, r.line,
                            o.customer_id AS stored_customer, o.ingestion_id AS stored_ingestion,
                            o.source_line AS stored_line
                     FROM ranked r LEFT JOIN orders o USING (order_id)
                     WHERE r.line = r.first_line;
                 INSERT INTO problems (line, severity, duplicate, field, value, reason, raw)
                 SELECT c.line,
                        CASE WHEN c.stored_customer = c.customer_id THEN 'ignored' ELSE 'rejected' END,
                        true, 'customer_id', c.customer_id::text,
                        CASE WHEN c.stored_customer = c.customer_id
                             THEN format('order %s is already stored (%s line %s); ignored', c.order_id, coalesce(i.key, 'an earlier file'), c.stored_line)
                             ELSE format('order %s already belongs to customer %s (%s line %s); history is never rewritten', c.order_id, c.stored_customer, coalesce(i.key, 'an earlier file'), c.stored_line)
                        END,
                        c.order_id || ',' || c.customer_id
                 FROM checked c LEFT JOIN ingestions i ON i.id = c.stored_ingestion
                 WHERE c.stored_customer IS NOT NULL;
                 CREATE TEMP TABLE new_orders ON COMMIT DROP AS
                     SELECT order_id, customer_id, line FROM checked WHERE stored_customer IS NULL;
                 ANALYZE new_orders;",
            )
            .await?;
        let bulk = self.bulk_mode("orders", "new_orders").await?;
        if bulk {
            self.begin_shadow(&ORDERS_TABLE).await?;
        }
        let client = self.client();
        client
            .execute(
                "INSERT INTO orders (order_id, customer_id, ingestion_id, source_line)
                 SELECT order_id, customer_id, $1, line FROM new_orders ORDER BY order_id",
                &[&self.ingestion_id],
            )
            .await?;
        if bulk {
            client.batch_execute(ORDERS_TABLE.build).await?;
        }
        self.merge_order_aggregates(rows_read, "new_orders").await
    }

    /// Direct mode for orders: every row the filter did not flag went
    /// straight into the empty shadow, so its keys are unique and its indexes
    /// are built at once. The few flagged rows are then checked exactly
    /// against each other and the table (by index), and the first line of
    /// each order_id that only staging holds is added. As for barcodes,
    /// analyzing the table is left to autovacuum: building the indexes
    /// already told the planner its size.
    async fn load_orders_direct(
        &mut self,
        batches: mpsc::Receiver<Batch<OrderRow>>,
    ) -> Result<LoadCounts, DbError> {
        // The rows copied come in line order: the first of them are the
        // first candidates for the orders-without-barcodes warnings.
        let mut copied = 0i64;
        let mut first_copied = Vec::with_capacity(ORDERS_WITHOUT_BARCODES_REPORTED);
        let rows_read = self
            .stage_direct(batches, |row: OrderRow| {
                copied += 1;
                if first_copied.len() < ORDERS_WITHOUT_BARCODES_REPORTED {
                    first_copied.push(row);
                }
                Ok(())
            })
            .await?;
        self.client()
            .batch_execute(&format!(
                "{build}
                 CREATE TEMP TABLE ranked ON COMMIT DROP AS
                     SELECT line, order_id, customer_id, copied,
                            first_value(line) OVER w AS first_line,
                            first_value(customer_id) OVER w AS first_customer
                     FROM (SELECT line, order_id, customer_id, false AS copied
                           FROM staging WHERE reason IS NULL
                           UNION ALL
                           SELECT o.source_line, o.order_id, o.customer_id, true FROM orders o
                           WHERE o.order_id IN (SELECT order_id FROM staging WHERE reason IS NULL)) c
                     WINDOW w AS (PARTITION BY order_id ORDER BY line);
                 {ORDER_REPEATS_TO_PROBLEMS}
                 INSERT INTO orders (order_id, customer_id, ingestion_id, source_line)
                 SELECT order_id, customer_id, {ingestion_id}, line FROM ranked
                 WHERE line = first_line AND NOT copied;",
                build = ORDERS_TABLE.build,
                ingestion_id = self.ingestion_id,
            ))
            .await?;
        let no_barcodes_yet: bool = self
            .client()
            .query_one("SELECT NOT EXISTS (SELECT 1 FROM barcodes)", &[])
            .await?
            .get(0);
        if no_barcodes_yet {
            self.merge_first_order_aggregates(rows_read, copied, first_copied)
                .await
        } else {
            self.merge_order_aggregates(
                rows_read,
                "(SELECT order_id, customer_id, source_line AS line FROM orders)",
            )
            .await
        }
    }

    /// The aggregates of a first orders load before any barcode: no ticket
    /// moves and every order is without barcodes, so the counts and the
    /// first warnings come from the rows copied and the few flagged rows that
    /// won, not from a scan of the table.
    async fn merge_first_order_aggregates(
        &mut self,
        rows_read: u64,
        copied: i64,
        first_copied: Vec<OrderRow>,
    ) -> Result<LoadCounts, DbError> {
        let client = self.client();
        // The first winners by line, each row also carrying how many won.
        let first_won = client
            .query(
                "SELECT line, order_id, customer_id, count(*) OVER () FROM ranked
                 WHERE line = first_line AND NOT copied ORDER BY line LIMIT $1",
                &[&(ORDERS_WITHOUT_BARCODES_REPORTED as i64)],
            )
            .await?;
        let won: i64 = first_won.first().map_or(0, |row| row.get(3));
        let mut first_lines: Vec<(i64, i64, i64)> = first_copied
            .iter()
            .map(|row| (row.line as i64, row.order_id.get(), row.customer_id.get()))
            .chain(
                first_won
                    .iter()
                    .map(|row| (row.get(0), row.get(1), row.get(2))),
            )
            .collect();
        first_lines.sort_unstable();
        first_lines.truncate(ORDERS_WITHOUT_BARCODES_REPORTED);
        let column = |pick: fn(&(i64, i64, i64)) -> i64| -> Vec<i64> {
            first_lines.iter().map(pick).collect()
        };
        client
            .execute(
                &ORDERS_WITHOUT_BARCODES_TO_PROBLEMS.replace(
                    "{first_lines}",
                    "unnest($1::bigint[], $2::bigint[], $3::bigint[])
                     AS first_lines (line, order_id, customer_id)",
                ),
                &[&column(|l| l.0), &column(|l| l.1), &column(|l| l.2)],
            )
            .await?;
        let inserted = copied + won;
        self.deltas.orders += inserted;
        self.counts(rows_read, inserted, inserted).await
    }

    /// Tickets of the new orders (from barcodes that arrived first), the
    /// orders-without-barcodes warnings, and the counts. `new_orders` is the
    /// relation of new orders (order_id, customer_id, line); the join is a
    /// plain query into a temporary table, so it may run in parallel.
    async fn merge_order_aggregates(
        &mut self,
        rows_read: u64,
        new_orders: &str,
    ) -> Result<LoadCounts, DbError> {
        // The first lines are picked before the texts are built: a first
        // load may have a million candidates.
        let warnings = ORDERS_WITHOUT_BARCODES_TO_PROBLEMS.replace(
            "{first_lines}",
            &format!(
                "(SELECT n.line, n.order_id, n.customer_id FROM {new_orders} n
                  WHERE NOT EXISTS (SELECT 1 FROM held h WHERE h.order_id = n.order_id)
                  ORDER BY n.line LIMIT {ORDERS_WITHOUT_BARCODES_REPORTED}) first_lines"
            ),
        );
        let client = self.client();
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE held ON COMMIT DROP AS
                     SELECT n.order_id, n.customer_id, count(*) AS tickets
                     FROM barcodes b JOIN {new_orders} n USING (order_id)
                     GROUP BY n.order_id, n.customer_id;
                 INSERT INTO customer_tickets (customer_id, tickets)
                 SELECT customer_id, sum(tickets) FROM held GROUP BY customer_id
                 ON CONFLICT (customer_id) DO UPDATE
                     SET tickets = customer_tickets.tickets + EXCLUDED.tickets;
                 {warnings}"
            ))
            .await?;
        let merged = client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {new_orders} n), count(*),
                            coalesce(sum(tickets), 0)::bigint
                     FROM held"
                ),
                &[],
            )
            .await?;
        let inserted: i64 = merged.get(0);
        let with_barcodes: i64 = merged.get(1);
        self.deltas.orders += inserted;
        self.deltas.tickets += merged.get::<_, i64>(2);
        self.counts(rows_read, inserted, inserted - with_barcodes)
            .await
    }

    /// Stages and merges a barcodes file. The first occurrence of a barcode
    /// wins (by line in the file, then the stored one); a stored unsold
    /// barcode becomes sold when a later file assigns it, a sold one never
    /// moves.
    ///
    /// A first load (into an empty table) also streams the export of
    /// processed_orders.csv to `export` from inside its transaction, and
    /// sums the tickets from it; see [`LoadSession::exported`].
    pub async fn load_barcodes(
        &mut self,
        batches: mpsc::Receiver<Batch<BarcodeRow>>,
        export: &mut ExportSink<'_>,
    ) -> Result<LoadCounts, DbError> {
        if self.begin_direct(&BARCODES_TABLE).await? {
            return self.load_barcodes_direct(batches, export).await;
        }
        let rows_read = self.stage(batches).await?;
        let client = self.client();
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE ranked ON COMMIT DROP AS
                     SELECT line, barcode, order_id, first_value(line) OVER w AS first_line
                     FROM staging WHERE reason IS NULL
                     WINDOW w AS (PARTITION BY barcode ORDER BY line);
                 {BARCODE_REPEATS_TO_PROBLEMS}"
            ))
            .await?;
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MERGE_LOCK])
            .await?;
        client
            .batch_execute(
                "CREATE TEMP TABLE checked ON COMMIT DROP AS
                     SELECT r.barcode, r.order_id, r.line, b.barcode IS NOT NULL AS stored,
                            b.order_id AS stored_order, b.ingestion_id AS stored_ingestion,
                            b.source_line AS stored_line
                     FROM ranked r LEFT JOIN barcodes b USING (barcode)
                     WHERE r.line = r.first_line;
                 INSERT INTO problems (line, severity, duplicate, field, value, reason, raw)
                 SELECT c.line, 'rejected', true, 'barcode', c.barcode,
                        CASE WHEN c.stored_order IS NOT NULL AND c.order_id IS DISTINCT FROM c.stored_order
                             THEN format('barcode already sold to order %s (%s line %s); a sold barcode never moves', c.stored_order, coalesce(i.key, 'an earlier file'), c.stored_line)
                             ELSE format('duplicate barcode: already stored from %s line %s; the first occurrence wins', coalesce(i.key, 'an earlier file'), c.stored_line)
                        END,
                        c.barcode || ',' || coalesce(c.order_id::text, '')
                 FROM checked c LEFT JOIN ingestions i ON i.id = c.stored_ingestion
                 WHERE c.stored AND NOT (c.stored_order IS NULL AND c.order_id IS NOT NULL);
                 CREATE TEMP TABLE accepted ON COMMIT DROP AS
                     SELECT barcode, order_id, line, stored AS sold_later FROM checked
                     WHERE NOT stored OR (stored_order IS NULL AND order_id IS NOT NULL);
                 ANALYZE accepted;",
            )
            .await?;
        let bulk = self
            .bulk_mode("barcodes", "accepted WHERE NOT sold_later")
            .await?;
        if bulk {
            self.begin_shadow(&BARCODES_TABLE).await?;
        }
        let client = self.client();
        // In key order, so the primary key grows at its right edge.
        client
            .execute(
                "INSERT INTO barcodes (barcode, order_id, ingestion_id, source_line)
                 SELECT barcode, order_id, $1, line FROM accepted WHERE NOT sold_later
                 ORDER BY barcode",
                &[&self.ingestion_id],
            )
            .await?;
        if bulk {
            client.batch_execute(BARCODES_TABLE.build).await?;
        }
        client
            .execute(
                "UPDATE barcodes b SET order_id = a.order_id, ingestion_id = $1, source_line = a.line
                 FROM accepted a WHERE a.sold_later AND b.barcode = a.barcode",
                &[&self.ingestion_id],
            )
            .await?;
        self.merge_barcode_aggregates(rows_read, "accepted").await
    }

    /// Direct mode for barcodes: as for orders, unflagged rows went straight
    /// into the empty shadow and the flagged ones are checked exactly once its
    /// indexes are built. Every barcode stored is counted, and each sold one
    /// kept for the export, as it goes in. The table is left for autovacuum
    /// to analyze: nothing in this transaction plans on its statistics, and
    /// analyzing a few million rows took longer than the orders' whole merge.
    async fn load_barcodes_direct(
        &mut self,
        batches: mpsc::Receiver<Batch<BarcodeRow>>,
        export: &mut ExportSink<'_>,
    ) -> Result<LoadCounts, DbError> {
        let sort_io = DbError::export("the sorted barcodes");
        let mut sold = ExternalSorter::new(self.sort_budget);
        let mut accepted = AcceptedBarcodes::default();
        let mut keep = |row: BarcodeRow| {
            accepted.inserted += 1;
            match row.order_id {
                None => accepted.inserted_unused += 1,
                Some(order_id) => sold
                    .push(SoldBarcode {
                        order_id: order_id.get(),
                        line: row.line,
                        barcode: row.barcode,
                    })
                    .map_err(sort_io)?,
            }
            Ok(())
        };
        let rows_read = self.stage_direct(batches, &mut keep).await?;
        self.client()
            .batch_execute(&format!(
                "{build}
                 CREATE TEMP TABLE ranked ON COMMIT DROP AS
                     SELECT line, barcode, order_id, copied, first_value(line) OVER w AS first_line
                     FROM (SELECT line, barcode, order_id, false AS copied
                           FROM staging WHERE reason IS NULL
                           UNION ALL
                           SELECT b.source_line, b.barcode, b.order_id, true FROM barcodes b
                           WHERE b.barcode IN (SELECT barcode FROM staging WHERE reason IS NULL)) c
                     WINDOW w AS (PARTITION BY barcode ORDER BY line);
                 {BARCODE_REPEATS_TO_PROBLEMS}
                 INSERT INTO barcodes (barcode, order_id, ingestion_id, source_line)
                 SELECT barcode, order_id, {ingestion_id}, line FROM ranked
                 WHERE line = first_line AND NOT copied;",
                build = BARCODES_TABLE.build,
                ingestion_id = self.ingestion_id,
            ))
            .await?;
        // The flagged rows that won are stored too.
        let winners = self
            .client()
            .query_raw(
                "SELECT line, barcode, order_id FROM ranked WHERE line = first_line AND NOT copied",
                std::iter::empty::<i64>(),
            )
            .await?;
        let mut winners = pin!(winners);
        while let Some(row) = winners.try_next().await? {
            keep(BarcodeRow {
                line: row.get::<_, i64>(0) as u64,
                barcode: Barcode::from_trusted(row.get(1)),
                order_id: row.get::<_, Option<i64>>(2).map(OrderId::from_trusted),
            })?;
        }
        let sold = sold.finish().map_err(sort_io)?;
        self.merge_first_barcode_aggregates(rows_read, accepted, sold, export)
            .await
    }

    /// Tickets of the accepted barcodes whose orders are known, the
    /// unknown-order warnings, and the counts. `accepted` is the relation of
    /// accepted rows (barcode, order_id, line, sold_later). The big joins are
    /// plain queries into temporary tables, so PostgreSQL may run them in
    /// parallel (a statement that writes a shared table never is).
    async fn merge_barcode_aggregates(
        &mut self,
        rows_read: u64,
        accepted: &str,
    ) -> Result<LoadCounts, DbError> {
        let client = self.client();
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE known ON COMMIT DROP AS
                     SELECT o.customer_id, count(*) AS tickets
                     FROM {accepted} a JOIN orders o USING (order_id)
                     GROUP BY o.customer_id;
                 {KNOWN_TO_CUSTOMER_TICKETS}
                 {orphans}",
                orphans = ORPHANS_TO_PROBLEMS.replace("{accepted}", accepted)
            ))
            .await?;
        let tickets: i64 = client
            .query_one("SELECT coalesce(sum(tickets), 0)::bigint FROM known", &[])
            .await?
            .get(0);
        let orphans: i64 = client
            .query_one("SELECT count(*) FROM orphans", &[])
            .await?
            .get(0);
        let accepted = self.accepted_counts(accepted).await?;
        self.merge_barcode_counts(rows_read, accepted, tickets, orphans)
            .await
    }

    /// The aggregates and the export of a first load, from the barcodes it
    /// stored: `sold`, sorted by order, merged with the orders in order_id
    /// order, gives processed_orders.csv (streamed to `export`) and the
    /// tickets per customer; with no barcodes before this file, every ticket
    /// of a known order is new. The sold barcodes of no known order are the
    /// orphans.
    async fn merge_first_barcode_aggregates(
        &mut self,
        rows_read: u64,
        accepted: AcceptedBarcodes,
        sold: external_sort::Sorted<SoldBarcode>,
        export: &mut ExportSink<'_>,
    ) -> Result<LoadCounts, DbError> {
        let exported_io = DbError::export("processed_orders.csv");
        let sort_io = DbError::export("the sorted barcodes");
        let totals_io = DbError::export("the tickets per customer");
        let client = self.client();
        let mut by_order = BarcodesByOrder::new(sold).map_err(sort_io)?;
        let mut totals = ExternalSorter::new(TOTALS_SORT_BUDGET);
        let mut held_totals = std::collections::HashMap::with_capacity(TOTALS_HELD);
        let (mut orders, mut exported_barcodes) = (0u64, 0i64);
        let known_orders = client
            .copy_out("COPY (SELECT order_id, customer_id FROM orders ORDER BY order_id) TO STDOUT BINARY")
            .await?;
        let known_orders = BinaryCopyOutStream::new(known_orders, &[Type::INT8, Type::INT8]);
        let mut known_orders = pin!(known_orders);
        while let Some(order) = known_orders.try_next().await? {
            let (order_id, customer_id): (i64, i64) = (order.try_get(0)?, order.try_get(1)?);
            let barcodes = by_order.of(order_id).map_err(sort_io)?;
            if barcodes.is_empty() {
                continue;
            }
            let tickets = barcodes.len() as i64;
            *held_totals.entry(customer_id).or_insert(0) += tickets;
            if held_totals.len() >= TOTALS_HELD {
                for pair in held_totals.drain() {
                    totals.push(pair).map_err(totals_io)?;
                }
            }
            export(ProcessedOrder {
                customer_id: CustomerId::from_trusted(customer_id),
                order_id: OrderId::from_trusted(order_id),
                barcodes,
            })
            .map_err(exported_io)?;
            orders += 1;
            exported_barcodes += tickets;
        }
        let orphans = by_order.orphans().map_err(sort_io)?;
        for pair in held_totals.drain() {
            totals.push(pair).map_err(totals_io)?;
        }
        // Under the merge lock nobody else adds tickets: an empty table (the
        // usual first load) takes the totals as they are.
        let no_tickets_yet: bool = client
            .query_one("SELECT NOT EXISTS (SELECT 1 FROM customer_tickets)", &[])
            .await?
            .get(0);
        if !no_tickets_yet {
            client
                .batch_execute(
                    "CREATE TEMP TABLE known (customer_id bigint, tickets bigint) ON COMMIT DROP",
                )
                .await?;
        }
        let target = if no_tickets_yet {
            "customer_tickets"
        } else {
            "known"
        };
        let sink = client
            .copy_in::<_, bytes::Bytes>(&format!(
                "COPY {target} (customer_id, tickets) FROM STDIN BINARY"
            ))
            .await?;
        let mut sink = pin!(sink);
        let mut copy = CopyBuffer::new();
        // The pairs come sorted by customer: a customer's sums (more than
        // one when the held sums were handed over) are added up.
        let mut current: Option<(i64, i64)> = None;
        for pair in totals.finish().map_err(totals_io)? {
            let (customer_id, tickets) = pair.map_err(totals_io)?;
            match current.as_mut() {
                Some((current_id, total)) if *current_id == customer_id => *total += tickets,
                _ => {
                    if let Some((done_id, done_total)) = current.replace((customer_id, tickets)) {
                        copy.row(2).int8(done_id).int8(done_total);
                        if let Some(full) = copy.take_if_full() {
                            sink.send(full).await?;
                        }
                    }
                }
            }
        }
        if let Some((done_id, done_total)) = current {
            copy.row(2).int8(done_id).int8(done_total);
        }
        sink.send(copy.finish()).await?;
        sink.as_mut().finish().await?;
        if !no_tickets_yet {
            client.batch_execute(KNOWN_TO_CUSTOMER_TICKETS).await?;
        }
        if orphans > 0 {
            client
                .batch_execute(&ORPHANS_TO_PROBLEMS.replace("{accepted}", FIRST_LOAD_ACCEPTED))
                .await?;
        }
        self.exported = Some(orders);
        self.merge_barcode_counts(rows_read, accepted, exported_barcodes, orphans)
            .await
    }

    /// What the relation of accepted barcode rows adds and sells.
    async fn accepted_counts(&self, accepted: &str) -> Result<AcceptedBarcodes, DbError> {
        let row = self
            .client()
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE NOT sold_later),
                            count(*) FILTER (WHERE NOT sold_later AND order_id IS NULL),
                            count(*) FILTER (WHERE sold_later)
                     FROM {accepted} a"
                ),
                &[],
            )
            .await?;
        Ok(AcceptedBarcodes {
            inserted: row.get(0),
            inserted_unused: row.get(1),
            sold_later: row.get(2),
        })
    }

    /// Moves the deltas of a barcodes load and counts what it did.
    async fn merge_barcode_counts(
        &mut self,
        rows_read: u64,
        accepted: AcceptedBarcodes,
        tickets: i64,
        orphans: i64,
    ) -> Result<LoadCounts, DbError> {
        self.deltas.barcodes += accepted.inserted;
        self.deltas.unused += accepted.inserted_unused - accepted.sold_later;
        self.deltas.tickets += tickets;
        self.counts(rows_read, accepted.inserted + accepted.sold_later, orphans)
            .await
    }

    /// Direct mode: when the table is empty (a first load), rows go
    /// straight into its shadow with COPY, without indexes, instead of
    /// through the staging table. Takes the merge lock first, so nothing else can fill
    /// the table meanwhile; returns false, changing nothing but perhaps
    /// holding the lock, when the table has rows.
    async fn begin_direct(&mut self, load_table: &'static LoadTable) -> Result<bool, DbError> {
        let client = self.client();
        // First a look at the counters, not the table: a lock taken on the
        // table now would be held while waiting for the merge lock, and
        // deadlock with a holder of the merge lock that wants to swap its
        // shadow in.
        let counted_empty = format!("SELECT {} = 0 FROM pipeline_stats", load_table.table);
        if !client
            .query_one(&counted_empty, &[])
            .await?
            .get::<_, bool>(0)
        {
            return Ok(false);
        }
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MERGE_LOCK])
            .await?;
        // Under the lock every writer has committed or not started: the
        // table itself has the last word.
        let is_empty = format!("SELECT NOT EXISTS (SELECT 1 FROM {})", load_table.table);
        if !client.query_one(&is_empty, &[]).await?.get::<_, bool>(0) {
            return Ok(false);
        }
        self.begin_shadow(load_table).await?;
        Ok(true)
    }

    /// From here on the load writes `load_table`'s shadow, which
    /// [`LoadSession::commit`] swaps in. Under the merge lock, so nobody
    /// writes the live table before the swap.
    async fn begin_shadow(&mut self, load_table: &'static LoadTable) -> Result<(), DbError> {
        self.client().batch_execute(load_table.shadow).await?;
        self.shadowed = Some(load_table);
        Ok(())
    }

    /// Streams valid rows straight into their table with binary COPY. A
    /// fixed-size filter flags the rows whose key may repeat an earlier line;
    /// those, and the rejected lines, go to the staging table instead, where
    /// the caller checks them exactly. Each row copied is then handed to
    /// `copied`. Returns the data lines read.
    async fn stage_direct<R: DirectRow>(
        &mut self,
        mut batches: mpsc::Receiver<Batch<R>>,
        mut copied: impl FnMut(R) -> Result<(), DbError> + Send,
    ) -> Result<u64, DbError> {
        self.create_staging::<R>().await?;
        let client = self.client();
        let mut seen = SeenFilter::with_bytes(self.repeat_filter_bytes);
        let (mut hashes, mut flags) = (Vec::new(), Vec::new());
        let mut side: Vec<Result<R, RejectedRow>> = Vec::new();
        let mut side_bytes = 0;
        let mut rows = 0u64;
        let mut complete = false;
        while !complete {
            let sink = client.copy_in::<_, bytes::Bytes>(R::DIRECT_COPY).await?;
            let mut sink = pin!(sink);
            let mut copy = CopyBuffer::new();
            loop {
                match batches.recv().await {
                    Some(Batch::Rows(batch)) => {
                        rows += batch.len() as u64;
                        hashes.clear();
                        hashes.extend(batch.iter().flatten().map(R::key_hash));
                        seen.check_and_insert_hashes(&hashes, &mut flags);
                        let mut flags = flags.iter();
                        for row in batch {
                            match row {
                                // A possible repeat waits in staging, so the
                                // table's keys stay unique and its indexes
                                // can be built before the exact check.
                                Ok(row) if *flags.next().expect("a flag per valid row") => {
                                    side.push(Ok(row))
                                }
                                Ok(row) => {
                                    row.encode_direct(self.ingestion_id, &mut copy);
                                    copied(row)?;
                                }
                                Err(rejected) => {
                                    side_bytes += rejected.raw.len() + rejected.value.len();
                                    side.push(Err(rejected));
                                }
                            }
                        }
                        if let Some(full) = copy.take_if_full() {
                            sink.send(full).await?;
                        }
                        if side.len() >= SIDE_ROWS_MAX || side_bytes >= SIDE_BYTES_MAX {
                            break;
                        }
                    }
                    Some(Batch::Complete) => {
                        complete = true;
                        break;
                    }
                    None => return Err(DbError::InputIncomplete),
                }
            }
            sink.send(copy.finish()).await?;
            sink.as_mut().finish().await?;
            if !side.is_empty() {
                let sink = client.copy_in(&R::staging_copy()).await?;
                let mut writer = pin!(BinaryCopyInWriter::new(sink, &R::staging_types()));
                for row in side.drain(..) {
                    write_staged(&row, writer.as_mut()).await?;
                }
                writer.finish().await?;
                side_bytes = 0;
            }
        }
        client.batch_execute(STAGED_REJECTS_TO_PROBLEMS).await?;
        Ok(rows)
    }

    /// Bulk mode: when a load at least doubles a table, inserting without its
    /// indexes and building them afterwards is several times faster than
    /// maintaining them row by row. The load writes a shadow holding a copy
    /// of the stored rows (at most as many as it adds; copying them without
    /// indexes costs less than the index build), so readers of the table
    /// never wait on the load.
    async fn bulk_mode(&self, table: &str, incoming: &str) -> Result<bool, DbError> {
        let row = self
            .client()
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {incoming}) > $1
                        AND (SELECT count(*) FROM {incoming}) >= (SELECT {table} FROM pipeline_stats)"
                ),
                &[&self.bulk_load_min_rows],
            )
            .await?;
        Ok(row.get(0))
    }

    async fn counts(
        &self,
        rows_read: u64,
        accepted: i64,
        warnings: i64,
    ) -> Result<LoadCounts, DbError> {
        let row = self
            .client()
            .query_one(
                "SELECT count(*) FILTER (WHERE severity = 'rejected'),
                        count(*) FILTER (WHERE duplicate)
                 FROM problems",
                &[],
            )
            .await?;
        Ok(LoadCounts {
            rows_read,
            accepted: accepted as u64,
            rejected: row.get::<_, i64>(0) as u64,
            duplicates: row.get::<_, i64>(1) as u64,
            warnings: warnings as u64,
        })
    }

    /// Streams the rows into a temporary staging table with binary COPY
    /// (PostgreSQL's fastest way in); rejected rows ride along with their
    /// reason so the rejects file can be written from one place.
    async fn stage<R: StagedRow>(
        &mut self,
        mut batches: mpsc::Receiver<Batch<R>>,
    ) -> Result<u64, DbError> {
        self.create_staging::<R>().await?;
        let client = self.client();
        let sink = client.copy_in(&R::staging_copy()).await?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &R::staging_types()));
        let mut rows = 0u64;
        loop {
            match batches.recv().await {
                Some(Batch::Rows(batch)) => {
                    for row in &batch {
                        write_staged(row, writer.as_mut()).await?;
                    }
                    rows += batch.len() as u64;
                }
                Some(Batch::Complete) => break,
                // The reader stopped without saying the input is complete:
                // the session is dropped and everything staged rolls back.
                None => return Err(DbError::InputIncomplete),
            }
        }
        writer.finish().await?;
        client.batch_execute(STAGED_REJECTS_TO_PROBLEMS).await?;
        Ok(rows)
    }

    /// The temporary staging table (typed columns, then the reject columns)
    /// and the problems table of this load.
    async fn create_staging<R: StagedRow>(&self) -> Result<(), DbError> {
        self.client()
            .batch_execute(&format!(
                "CREATE TEMP TABLE staging ({}, field text, value text, reason text, raw text) ON COMMIT DROP;
                 CREATE TEMP TABLE problems (
                     line bigint, severity text, duplicate boolean NOT NULL DEFAULT false,
                     field text, value text, reason text, raw text) ON COMMIT DROP;",
                R::STAGING_COLUMNS
            ))
            .await?;
        Ok(())
    }

    /// The first `limit` problems by line, for the report.
    pub async fn first_problems(&self, limit: i64) -> Result<Vec<Problem>, DbError> {
        let rows = self
            .client()
            .query(
                "SELECT line, severity, coalesce(field, ''), coalesce(value, ''), coalesce(reason, '')
                 FROM problems ORDER BY line, severity LIMIT $1",
                &[&limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Problem {
                line: row.get::<_, i64>(0) as u64,
                severity: row.get(1),
                field: row.get(2),
                value: row.get(3),
                reason: row.get(4),
            })
            .collect())
    }

    /// Streams every rejected row, by line, to `sink` as
    /// (line, field, value, reason, raw).
    pub async fn for_each_rejected<F, E>(&self, mut sink: F) -> Result<u64, E>
    where
        F: FnMut(u64, &str, &str, &str, &str) -> Result<(), E>,
        E: From<DbError>,
    {
        let stream = self
            .client()
            .query_raw(
                "SELECT line, coalesce(field, ''), coalesce(value, ''), coalesce(reason, ''), coalesce(raw, '')
                 FROM problems WHERE severity = 'rejected' ORDER BY line",
                std::iter::empty::<i64>(),
            )
            .await
            .map_err(DbError::from)?;
        let mut stream = pin!(stream);
        let mut written = 0;
        while let Some(row) = stream.try_next().await.map_err(DbError::from)? {
            sink(
                row.get::<_, i64>(0) as u64,
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
            )?;
            written += 1;
        }
        Ok(written)
    }

    /// Completes the ledger row, bumps the totals and the data version, and
    /// commits. Returns the new data version.
    pub async fn commit(self, entry: &LedgerEntry) -> Result<Committed, DbError> {
        let client = self.client();
        client
            .execute(
                "UPDATE ingestions SET status = 'loaded', kind = $2, rows_read = $3, accepted = $4,
                     rejected = $5, duplicates = $6, warnings = $7, report_key = $8,
                     rejects_key = $9, finished_at = now(), duration_ms = $10, error = NULL
                 WHERE id = $1",
                &[
                    &self.ingestion_id,
                    &entry.kind,
                    &(entry.counts.rows_read as i64),
                    &(entry.counts.accepted as i64),
                    &(entry.counts.rejected as i64),
                    &(entry.counts.duplicates as i64),
                    &(entry.counts.warnings as i64),
                    &entry.report_key,
                    &entry.rejects_key,
                    &entry.duration_ms,
                ],
            )
            .await?;
        let changed = entry.counts.accepted > 0;
        let row = client
            .query_one(
                "UPDATE pipeline_stats SET
                     orders = orders + $1, barcodes = barcodes + $2,
                     unused_barcodes = unused_barcodes + $3,
                     rejected_rows = rejected_rows + $4,
                     data_version = data_version + CASE WHEN $5 THEN 1 ELSE 0 END,
                     output_version = output_version + CASE WHEN $6 THEN 1 ELSE 0 END
                 RETURNING data_version, output_version",
                &[
                    &self.deltas.orders,
                    &self.deltas.barcodes,
                    &self.deltas.unused,
                    &(entry.counts.rejected as i64),
                    &changed,
                    &(self.deltas.tickets > 0),
                ],
            )
            .await?;
        // Last: the swap's lock lasts until the commit.
        if let Some(load_table) = self.shadowed {
            client.batch_execute(load_table.swap).await?;
        }
        // Committed: the connection is clean and can go back to the pool.
        self.tx.end("COMMIT").await?;
        Ok(Committed {
            data_version: row.get(0),
            output_version: row.get(1),
        })
    }
}

/// The versions a load committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Bumped by every load that changed something.
    pub data_version: i64,
    /// Bumped by every load that changed processed_orders.csv.
    pub output_version: i64,
}

/// Publishing processed_orders.csv under the publish lock.
pub struct PublishSession {
    tx: Transaction,
    destination: String,
    pub data_version: i64,
    /// None when nothing was ever published there.
    pub published_version: Option<i64>,
    /// The ETag the file was given (None when unknown).
    published_etag: Option<String>,
}

impl PublishSession {
    /// True when the last publish there showed the current data.
    pub fn is_current(&self) -> bool {
        self.published_version
            .is_some_and(|v| v >= self.data_version)
    }

    /// True when `etag_now`, the ETag of the object there now, is the file
    /// the last publish wrote: it was neither deleted nor replaced.
    pub fn is_intact(&self, etag_now: Option<&str>) -> bool {
        match (etag_now, self.published_etag.as_deref()) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(now), Some(published)) => now == published,
        }
    }

    /// Streams every order that has barcodes, in order_id order, to `sink`
    /// one at a time so memory stays flat whatever the table size.
    pub async fn for_each_processed_order<F, E>(&self, sink: F) -> Result<u64, E>
    where
        F: FnMut(ProcessedOrder) -> Result<(), E>,
        E: From<DbError>,
    {
        stream_processed_orders(self.tx.client(), sink).await
    }

    /// Records that the file, now with `etag`, shows `data_version`, and
    /// releases the lock.
    pub async fn finish(self, etag: Option<&str>) -> Result<(), DbError> {
        self.tx
            .client()
            .execute(
                "INSERT INTO published_outputs (destination, data_version, etag) VALUES ($1, $2, $3)
                 ON CONFLICT (destination) DO UPDATE
                     SET data_version = GREATEST(published_outputs.data_version, EXCLUDED.data_version),
                         etag = EXCLUDED.etag",
                &[&self.destination, &self.data_version, &etag],
            )
            .await?;
        self.tx.end("COMMIT").await
    }
}

/// Streams every order that has barcodes, in order_id order, to `sink`.
/// PostgreSQL joins and sorts (in parallel where it can); the barcodes of an
/// order arrive together, in file order, and are grouped here.
async fn stream_processed_orders<F, E>(client: &Object, mut sink: F) -> Result<u64, E>
where
    F: FnMut(ProcessedOrder) -> Result<(), E>,
    E: From<DbError>,
{
    let stream = client
        .query_raw(PROCESSED_ORDERS_QUERY, std::iter::empty::<i64>())
        .await
        .map_err(DbError::from)?;
    let mut stream = pin!(stream);
    let mut written = 0;
    let mut current: Option<ProcessedOrder> = None;
    while let Some(row) = stream.try_next().await.map_err(DbError::from)? {
        let (customer_id, order_id): (i64, i64) = (row.get(0), row.get(1));
        let barcode = Barcode::from_trusted(row.get::<_, String>(2));
        match current.as_mut() {
            Some(order) if order.order_id.get() == order_id => order.barcodes.push(barcode),
            _ => {
                if let Some(done) = current.replace(ProcessedOrder {
                    customer_id: CustomerId::from_trusted(customer_id),
                    order_id: OrderId::from_trusted(order_id),
                    barcodes: vec![barcode],
                }) {
                    sink(done)?;
                    written += 1;
                }
            }
        }
    }
    if let Some(done) = current {
        sink(done)?;
        written += 1;
    }
    Ok(written)
}

/// A NULL for a column of any type: a rejected row has no typed values, and
/// a valid row has no reject details.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Moves the staged rejected lines to the problems table.
const STAGED_REJECTS_TO_PROBLEMS: &str = "
    INSERT INTO problems (line, severity, field, value, reason, raw)
    SELECT line, 'rejected', field, value, reason, raw FROM staging WHERE reason IS NOT NULL;
    ANALYZE staging;";

/// Writes one line, valid or rejected, to the staging COPY.
async fn write_staged<R: StagedRow>(
    row: &Result<R, RejectedRow>,
    writer: Pin<&mut BinaryCopyInWriter>,
) -> Result<(), tokio_postgres::Error> {
    match row {
        Ok(row) => row.write(writer).await,
        Err(rejected) => R::write_rejected(rejected, writer).await,
    }
}

/// A row kind that can be bulk-loaded through the staging table.
trait StagedRow: Send + 'static {
    /// Typed columns of the staging table (the reject columns are added).
    const STAGING_COLUMNS: &'static str;
    const COPY_COLUMNS: &'static str;
    const COLUMN_TYPES: &'static [Type];

    fn staging_copy() -> String {
        format!(
            "COPY staging ({}, field, value, reason, raw) FROM STDIN BINARY",
            Self::COPY_COLUMNS
        )
    }

    fn staging_types() -> Vec<Type> {
        let mut types = Self::COLUMN_TYPES.to_vec();
        types.extend([Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT]);
        types
    }

    /// A valid line: its typed columns, NULL reject columns.
    async fn write(
        &self,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> Result<(), tokio_postgres::Error>;

    /// A rejected line: its number, NULL typed columns, and why.
    async fn write_rejected(
        rejected: &RejectedRow,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> Result<(), tokio_postgres::Error> {
        let line = rejected.line as i64;
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![&line];
        values.extend(std::iter::repeat_n(
            &Null as &(dyn ToSql + Sync),
            Self::COLUMN_TYPES.len() - 1,
        ));
        values.extend([
            &rejected.field as &(dyn ToSql + Sync),
            &rejected.value,
            &rejected.reason,
            &rejected.raw,
        ]);
        writer.write(&values).await
    }
}

/// A row kind that can also be copied straight into its final table.
trait DirectRow: StagedRow {
    const DIRECT_COPY: &'static str;

    /// Appends the row, in the columns of `DIRECT_COPY`.
    fn encode_direct(&self, ingestion_id: i64, copy: &mut CopyBuffer);

    /// The [`SeenFilter::hash`] of the row's key.
    fn key_hash(&self) -> u64;
}

impl StagedRow for OrderRow {
    const STAGING_COLUMNS: &'static str = "line bigint, order_id bigint, customer_id bigint";
    const COPY_COLUMNS: &'static str = "line, order_id, customer_id";
    const COLUMN_TYPES: &'static [Type] = &[Type::INT8, Type::INT8, Type::INT8];

    async fn write(
        &self,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> Result<(), tokio_postgres::Error> {
        let line = self.line as i64;
        // The reject columns (field, value, reason, raw) are NULL.
        writer
            .write(&[
                &line,
                &self.order_id.get(),
                &self.customer_id.get(),
                &Null,
                &Null,
                &Null,
                &Null,
            ])
            .await
    }
}

impl DirectRow for OrderRow {
    const DIRECT_COPY: &'static str =
        "COPY orders (order_id, customer_id, ingestion_id, source_line) FROM STDIN BINARY";

    fn encode_direct(&self, ingestion_id: i64, copy: &mut CopyBuffer) {
        copy.row(4)
            .int8(self.order_id.get())
            .int8(self.customer_id.get())
            .int8(ingestion_id)
            .int8(self.line as i64);
    }

    fn key_hash(&self) -> u64 {
        SeenFilter::hash(&self.order_id.get())
    }
}

impl StagedRow for BarcodeRow {
    const STAGING_COLUMNS: &'static str =
        "line bigint, barcode text COLLATE \"C\", order_id bigint";
    const COPY_COLUMNS: &'static str = "line, barcode, order_id";
    const COLUMN_TYPES: &'static [Type] = &[Type::INT8, Type::TEXT, Type::INT8];

    async fn write(
        &self,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> Result<(), tokio_postgres::Error> {
        let line = self.line as i64;
        let order_id = self.order_id.map(OrderId::get);
        writer
            .write(&[
                &line,
                &self.barcode.as_str(),
                &order_id,
                &Null,
                &Null,
                &Null,
                &Null,
            ])
            .await
    }
}

impl DirectRow for BarcodeRow {
    const DIRECT_COPY: &'static str =
        "COPY barcodes (barcode, order_id, ingestion_id, source_line) FROM STDIN BINARY";

    fn encode_direct(&self, ingestion_id: i64, copy: &mut CopyBuffer) {
        copy.row(4)
            .text(self.barcode.as_str())
            .int8_or_null(self.order_id.map(OrderId::get))
            .int8(ingestion_id)
            .int8(self.line as i64);
    }

    fn key_hash(&self) -> u64 {
        SeenFilter::hash(self.barcode.as_str())
    }
}
