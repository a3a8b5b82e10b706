//! One file's load, in one transaction: [`LoadSession`] owns it, picks how
//! the rows go in, and commits. The ways in:
//!
//! - direct, into an empty table (a first load): rows go straight into a
//!   shadow of the table with COPY, without indexes (see `staging`, `table`);
//! - staged, otherwise: rows go through a temporary staging table and are
//!   merged; in bulk mode (a load that at least doubles its table) into a
//!   shadow whose indexes are built once.
//!
//! The per-kind rules are in `orders` and `barcodes`; a first barcodes load
//! also writes processed_orders.csv (`first_export`); what a load reports
//! about its lines is in [`problems`].

use deadpool_postgres::Object;
use tokio::sync::mpsc;

use super::aggregates::{self, Deltas};
use super::export::ExportSink;
use super::ledger::{self, LedgerEntry};
use super::transaction::Transaction;
use super::{locks, DbError};
use crate::csv_input::RejectedRow;
use crate::domain::{BarcodeRow, OrderRow};
use crate::seen::DEFAULT_FILTER_BYTES;

pub use crate::domain::outcome::{LoadCounts, OrderAtLine};

/// Which lines of processed_orders.csv a load changed, for the publisher
/// (see [`aggregates::record_changed_lines`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangedLines {
    None,
    /// Those of the orders in the temporary table `changed_orders`.
    Listed,
    /// Every line: a first barcodes load, which writes the file itself.
    WholeFile,
}

mod barcodes;
mod first_export;
mod orders;
pub mod problems;
mod ranking;
mod rows;
mod staging;
mod table;

use table::{LoadTable, BARCODES_TABLE, ORDERS_TABLE};

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

/// The versions a load committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Bumped by every load that changed something.
    pub data_version: i64,
    /// Bumped by every load that changed processed_orders.csv.
    pub output_version: i64,
}

/// How loads size their memory and pick their mode (see the `with_*`
/// settings of [`super::PgStore`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct LoadSettings {
    pub repeat_filter_bytes: usize,
    pub sort_budget: usize,
    pub bulk_load_min_rows: i64,
}

impl Default for LoadSettings {
    fn default() -> Self {
        Self {
            repeat_filter_bytes: DEFAULT_FILTER_BYTES,
            sort_budget: first_export::SOLD_SORT_BUDGET,
            bulk_load_min_rows: BULK_LOAD_MIN_ROWS,
        }
    }
}

/// One file's load: a transaction on a dedicated connection. Dropping it
/// without [`LoadSession::commit`] rolls everything back, whatever happened.
pub struct LoadSession {
    tx: Transaction,
    ingestion_id: i64,
    settings: LoadSettings,
    deltas: Deltas,
    /// Orders a first load exported inside its transaction, if it did.
    exported: Option<u64>,
    /// The table this load writes as a shadow, swapped in at the commit.
    shadowed: Option<&'static LoadTable>,
    /// The lines of processed_orders.csv the load changed.
    changed_lines: ChangedLines,
    /// Whether the rows went in (through staging, with a `problems` table).
    staged: bool,
    /// The first new orders without barcodes, by line (an orders load).
    first_without_barcodes: Vec<OrderAtLine>,
}

impl LoadSession {
    /// The session of the transaction `tx`, which claimed ledger row
    /// `ingestion_id` (see [`super::PgStore::begin_ingestion`]).
    pub(super) fn new(tx: Transaction, ingestion_id: i64, settings: LoadSettings) -> Box<Self> {
        Box::new(Self {
            tx,
            ingestion_id,
            settings,
            deltas: Deltas::default(),
            exported: None,
            shadowed: None,
            changed_lines: ChangedLines::None,
            staged: false,
            first_without_barcodes: Vec::new(),
        })
    }

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

    /// The first orders the load stored without barcodes, by line (at most
    /// `FIRST_ORDERS_WITHOUT_BARCODES`; the counts have them all).
    pub fn first_orders_without_barcodes(&self) -> &[OrderAtLine] {
        &self.first_without_barcodes
    }

    /// Stages and merges an orders file. The first row for an order_id wins;
    /// a repeat with the same customer is a no-op, with another customer a
    /// rejected conflict; stored orders are never rewritten.
    pub async fn load_orders(
        &mut self,
        batches: mpsc::Receiver<Batch<OrderRow>>,
    ) -> Result<LoadCounts, DbError> {
        if self.begin_direct(&ORDERS_TABLE).await? {
            self.load_orders_direct(batches).await
        } else {
            self.load_orders_staged(batches).await
        }
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
            self.load_barcodes_direct(batches, export).await
        } else {
            self.load_barcodes_staged(batches).await
        }
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
        locks::take_merge_lock(client).await?;
        // Under the lock every writer has committed or not started: the
        // table itself has the last word.
        let is_empty = format!("SELECT NOT EXISTS (SELECT 1 FROM {})", load_table.table);
        if !client.query_one(&is_empty, &[]).await?.get::<_, bool>(0) {
            return Ok(false);
        }
        self.begin_shadow(load_table).await?;
        Ok(true)
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
                &[&self.settings.bulk_load_min_rows],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Completes the ledger row, bumps the totals and the data version, and
    /// commits. Returns the new data version.
    pub async fn commit(self, entry: &LedgerEntry) -> Result<Committed, DbError> {
        if self.staged {
            self.keep_rejected_rows().await?;
        }
        let client = self.client();
        ledger::complete_ingestion(client, self.ingestion_id, entry).await?;
        let changed = entry.counts.accepted > 0;
        let committed =
            aggregates::apply(client, self.deltas, entry.counts.rejected as i64, changed).await?;
        let changed_lines = match self.changed_lines {
            _ if self.deltas.tickets == 0 => None,
            ChangedLines::None => None,
            ChangedLines::Listed => Some(Some("SELECT order_id FROM changed_orders")),
            ChangedLines::WholeFile => Some(None),
        };
        if let Some(changed) = changed_lines {
            aggregates::record_changed_lines(client, committed.output_version, changed).await?;
        }
        // Last: the swap's lock lasts until the commit.
        if let Some(load_table) = self.shadowed {
            client.batch_execute(load_table.swap).await?;
        }
        // Committed: the connection is clean and can go back to the pool.
        self.tx.end("COMMIT").await?;
        Ok(committed)
    }
}
