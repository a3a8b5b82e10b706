//! processed_orders.csv from the database: the export queries, and
//! publishing under the publish lock, only when the file is behind the data
//! (or no longer the file that was published). The segments the file is
//! made of are recorded in `segments`.

use std::pin::pin;
use std::time::Duration;

use deadpool_postgres::Object;
use futures_util::TryStreamExt;

use super::transaction::Transaction;
use super::{locks, DbError, PgStore};

mod segments;

use crate::domain::{Barcode, CustomerId, OrderId, ProcessedOrder};
pub use segments::{ChangedSegments, SegmentUpdate};

/// The export query behind processed_orders.csv: every barcode of a known
/// order, by order_id, the barcodes of an order together and in file order.
/// A first barcodes load writes the same order from its own stream.
const PROCESSED_ORDERS_QUERY: &str = "
    SELECT o.customer_id, o.order_id, b.barcode
    FROM orders o JOIN barcodes b ON b.order_id = o.order_id
    ORDER BY o.order_id, b.ingestion_id, b.source_line";

/// The same for the orders from `$1` to `$2` (inclusive): one segment's, or
/// a few neighbours', found by index. The range is stated for barcodes too,
/// so their order_id index is scanned over it: from the orders' range
/// alone, with no statistics on barcodes yet (a first load leaves them to
/// autovacuum), the planner scanned all of barcodes, 4.8 s against 0.7 s
/// for the tail of a 10M-order base.
const PROCESSED_ORDERS_BETWEEN_QUERY: &str = "
    SELECT o.customer_id, o.order_id, b.barcode
    FROM orders o JOIN barcodes b ON b.order_id = o.order_id
    WHERE o.order_id BETWEEN $1 AND $2 AND b.order_id BETWEEN $1 AND $2
    ORDER BY o.order_id, b.ingestion_id, b.source_line";

/// Settings for the whole export: it reads every order and barcode, so
/// sequential scans and one sort beat walking the order_id index into a heap
/// in barcode order, and worker processes sharing the join and sort beat one.
/// JIT compiling it took longer (0.2 s) than it saved. Set around it only:
/// a segment's orders are found by index.
const WHOLE_EXPORT_SETTINGS: &str = "
    SET LOCAL work_mem = '256MB';
    SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off;
    SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0.001;
    SET LOCAL jit = off;";
/// Settings for the range queries (the rest of a publish). Each sorts its
/// run of segments' barcodes: two segments' 1M barcodes onto 10M orders
/// took 1.80 s at the default work_mem (the sort on disk) and 1.56 s at
/// 64MB. One publisher runs at a time, so the memory is bounded; a bigger
/// run spills. JIT compiled these for 56 ms and saved nothing.
const RANGE_EXPORT_SETTINGS: &str = "
    SET LOCAL work_mem = '64MB';
    SET LOCAL enable_indexscan TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT;
    SET LOCAL parallel_setup_cost TO DEFAULT; SET LOCAL parallel_tuple_cost TO DEFAULT;
    SET LOCAL jit = off;";

/// A publisher's transaction: one snapshot for everything it reads, so the
/// segments it rewrites and the version it records agree.
const BEGIN_PUBLISH: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ";

/// Where the export of a first load writes the orders it streams.
pub type ExportSink<'a> = dyn FnMut(ProcessedOrder) -> std::io::Result<()> + Send + 'a;

impl PgStore {
    /// Starts publishing processed_orders.csv: waits for the publish lock
    /// and tells whether the published file is behind the data.
    pub async fn begin_publish(&self, destination: &str) -> Result<PublishSession, DbError> {
        let connection = Transaction::guard(&self.pool).await?;
        locks::take_publish_lock(connection.client()).await?;
        PublishSession::begin(connection, destination).await
    }

    /// Like [`PgStore::begin_publish`] when the publish lock is free; `None`
    /// when another publisher holds it (after a commit, that one will see
    /// the commit: a publisher repeats until the file is current). With the
    /// lock, it first waits up to `settle` while another load merges, so
    /// that load's commit is in the snapshot; the loads committing
    /// meanwhile find the lock taken and leave their part to this one.
    pub async fn try_begin_publish(
        &self,
        destination: &str,
        settle: Duration,
    ) -> Result<Option<PublishSession>, DbError> {
        let connection = Transaction::guard(&self.pool).await?;
        if !locks::try_take_publish_lock(connection.client()).await? {
            connection.unused();
            return Ok(None);
        }
        if !settle.is_zero() {
            let waited = locks::wait_while_merging(connection.client(), settle).await?;
            if !waited.is_zero() {
                tracing::debug!(
                    waited_ms = waited.as_millis() as u64,
                    "waited for a merge in flight before publishing"
                );
            }
        }
        PublishSession::begin(connection, destination)
            .await
            .map(Some)
    }

    /// Whether the file last published to `destination` shows the data as
    /// committed now.
    pub async fn output_is_current(&self, destination: &str) -> Result<bool, DbError> {
        let client = self.pool.get().await?;
        let row = client.query_one(PUBLISHED_STATE, &[&destination]).await?;
        Ok(PublishedState::from_row(&row).is_current())
    }
}

/// The output version of the data, and what was last published to a
/// destination (`$1`): its data version and ETag.
const PUBLISHED_STATE: &str = "SELECT s.output_version, p.data_version, p.etag, p.publishes
    FROM pipeline_stats s LEFT JOIN published_outputs p ON p.destination = $1";

/// A row of [`PUBLISHED_STATE`].
struct PublishedState {
    data_version: i64,
    /// None when nothing was ever published there.
    published_version: Option<i64>,
    /// The ETag the file was given (None when unknown).
    published_etag: Option<String>,
    /// How many publishes there were.
    publishes: i64,
}

impl PublishedState {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        Self {
            data_version: row.get(0),
            published_version: row.get(1),
            published_etag: row.get(2),
            publishes: row.get::<_, Option<i64>>(3).unwrap_or(0),
        }
    }

    /// True when the last publish showed the current data.
    fn is_current(&self) -> bool {
        self.published_version
            .is_some_and(|v| v >= self.data_version)
    }
}

/// Publishing processed_orders.csv under the publish lock.
pub struct PublishSession {
    tx: Transaction,
    destination: String,
    state: PublishedState,
}

impl PublishSession {
    /// Begins the transaction on `tx`, a connection holding the publish lock.
    async fn begin(tx: Transaction, destination: &str) -> Result<Self, DbError> {
        tx.client()
            .batch_execute(&format!("{BEGIN_PUBLISH};{RANGE_EXPORT_SETTINGS}"))
            .await?;
        let row = tx
            .client()
            .query_one(PUBLISHED_STATE, &[&destination])
            .await?;
        Ok(PublishSession {
            state: PublishedState::from_row(&row),
            tx,
            destination: destination.to_owned(),
        })
    }

    /// The output version of the data this session sees.
    pub fn data_version(&self) -> i64 {
        self.state.data_version
    }

    /// True when the last publish there showed the current data.
    pub fn is_current(&self) -> bool {
        self.state.is_current()
    }

    /// True when `etag_now`, the ETag of the object there now, is the file
    /// the last publish wrote: it was neither deleted nor replaced.
    pub fn is_intact(&self, etag_now: Option<&str>) -> bool {
        match (etag_now, self.state.published_etag.as_deref()) {
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
        let client = self.tx.client();
        client
            .batch_execute(WHOLE_EXPORT_SETTINGS)
            .await
            .map_err(DbError::from)?;
        let written = stream_processed_orders(client, PROCESSED_ORDERS_QUERY, &[], sink).await?;
        client
            .batch_execute(RANGE_EXPORT_SETTINGS)
            .await
            .map_err(DbError::from)?;
        Ok(written)
    }

    /// Like [`PublishSession::for_each_processed_order`] for the orders from
    /// `first` to `last` (inclusive).
    pub async fn for_each_processed_order_between<F, E>(
        &self,
        first: i64,
        last: i64,
        sink: F,
    ) -> Result<u64, E>
    where
        F: FnMut(ProcessedOrder) -> Result<(), E>,
        E: From<DbError>,
    {
        let client = self.tx.client();
        stream_processed_orders(client, PROCESSED_ORDERS_BETWEEN_QUERY, &[first, last], sink).await
    }

    /// Ends the session without publishing (the file was current), so its
    /// connection goes back to the pool instead of being closed.
    pub async fn release(self) -> Result<(), DbError> {
        self.tx
            .end(&locks::end_and_release_publish_lock("ROLLBACK"))
            .await
    }

    /// Records that the file, now with `etag` and made of the segments as
    /// `update` changes them, shows `data_version`; forgets the changes
    /// every destination has published; commits and releases the lock.
    pub async fn finish(
        self,
        etag: Option<&str>,
        update: SegmentUpdate<'_>,
    ) -> Result<(), DbError> {
        let client = self.tx.client();
        segments::replace(client, &self.destination, update).await?;
        client
            .execute(
                "INSERT INTO published_outputs (destination, data_version, etag, publishes)
                 VALUES ($1, $2, $3, 1)
                 ON CONFLICT (destination) DO UPDATE
                     SET data_version = GREATEST(published_outputs.data_version, EXCLUDED.data_version),
                         etag = EXCLUDED.etag,
                         publishes = published_outputs.publishes + 1",
                &[&self.destination, &self.state.data_version, &etag],
            )
            .await?;
        segments::forget_published_changes(client).await?;
        self.tx
            .end(&locks::end_and_release_publish_lock("COMMIT"))
            .await
    }
}

/// Streams the orders `query` selects (with `params`) to `sink`, one at a
/// time. PostgreSQL joins and sorts; the barcodes of an order arrive
/// together, in file order, and are grouped here.
async fn stream_processed_orders<F, E>(
    client: &Object,
    query: &str,
    params: &[i64],
    mut sink: F,
) -> Result<u64, E>
where
    F: FnMut(ProcessedOrder) -> Result<(), E>,
    E: From<DbError>,
{
    let stream = client
        .query_raw(query, params.iter().copied())
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
