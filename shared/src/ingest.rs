//! Ingesting one object: stream it out of storage, parse it on a blocking
//! thread, COPY the valid rows into PostgreSQL, then republish
//! `processed_orders.csv`. Knows the ports ([`ObjectStore`], [`PgStore`]),
//! not how they are reached.

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio_util::io::SyncIoBridge;

use crate::config::PROCESSED_ORDERS_KEY;
use crate::csv_input::{CsvRows, FileError, FileKind, RejectedRow, Row};
use crate::db::{Batch, DbError, LoadCounts, PgStore};
use crate::processed::ProcessedOrdersWriter;
use crate::storage::{ObjectReader, ObjectRef, ObjectStore, StorageError};

/// Rows per message between the parser thread and the loader.
const BATCH_ROWS: usize = 4096;
/// Batches in flight: bounds memory whatever the file size.
const BATCHES_IN_FLIGHT: usize = 4;
/// Rejected rows kept in a report (all are counted).
const MAX_REPORTED_REJECTS: usize = 100;

/// A failure worth retrying: the input may well succeed next time (storage or
/// database trouble). A broken file is not an error: it is a rejected report.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("writing processed_orders.csv: {0}")]
    Output(String),
    #[error("internal: {0}")]
    Internal(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestStatus {
    /// Loaded (possibly with some rows rejected).
    Loaded,
    /// The file as a whole could not be read; nothing was stored.
    Rejected,
}

/// The outcome of one object's ingest, logged and returned to the caller.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestReport {
    pub bucket: String,
    pub key: String,
    pub status: IngestStatus,
    pub kind: Option<FileKind>,
    pub counts: LoadCounts,
    pub rejected_rows: u64,
    /// The first rejected rows, with line, field, value and reason.
    pub rejects: Vec<RejectedRow>,
    /// Why the whole file was rejected, when it was.
    pub error: Option<String>,
    pub processed_orders_written: Option<u64>,
    pub elapsed_ms: u128,
}

/// Rows that failed validation, as the parser thread saw them.
#[derive(Debug, Default)]
struct ParseOutcome {
    rejected_rows: u64,
    rejects: Vec<RejectedRow>,
}

/// Ingests objects into the store. Built once per cold start.
pub struct Ingestor<S> {
    store: S,
    db: PgStore,
}

impl<S: ObjectStore> Ingestor<S> {
    pub fn new(store: S, db: PgStore) -> Self {
        Self { store, db }
    }

    pub fn db(&self) -> &PgStore {
        &self.db
    }

    /// Loads one object and republishes `processed/processed_orders.csv` in
    /// the same bucket.
    #[tracing::instrument(skip_all, fields(bucket = %object.bucket, key = %object.key))]
    pub async fn ingest(&self, object: &ObjectRef) -> Result<IngestReport, IngestError> {
        let started = Instant::now();
        let reader = self.store.open(&object.bucket, &object.key).await?;
        let (kind, counts, parsed) = match self.load(reader).await? {
            Ok(loaded) => loaded,
            Err(file_error) => {
                let report = IngestReport {
                    bucket: object.bucket.clone(),
                    key: object.key.clone(),
                    status: IngestStatus::Rejected,
                    kind: None,
                    counts: LoadCounts::default(),
                    rejected_rows: 0,
                    rejects: Vec::new(),
                    error: Some(file_error.to_string()),
                    processed_orders_written: None,
                    elapsed_ms: started.elapsed().as_millis(),
                };
                tracing::warn!(reason = %file_error, "file rejected; nothing stored");
                return Ok(report);
            }
        };
        for reject in &parsed.rejects {
            tracing::warn!(line = reject.line, field = %reject.field, value = %reject.value, reason = %reject.reason, "row rejected");
        }
        let written = self.publish_processed_orders(&object.bucket).await?;
        let report = IngestReport {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            status: IngestStatus::Loaded,
            kind: Some(kind),
            counts,
            rejected_rows: parsed.rejected_rows,
            rejects: parsed.rejects,
            error: None,
            processed_orders_written: Some(written),
            elapsed_ms: started.elapsed().as_millis(),
        };
        tracing::info!(
            kind = kind.as_str(),
            rows = counts.rows,
            stored = counts.stored,
            duplicates_in_file = counts.duplicates_in_file,
            already_stored = counts.already_stored,
            rejected_rows = report.rejected_rows,
            processed_orders = written,
            elapsed_ms = report.elapsed_ms as u64,
            "ingested"
        );
        Ok(report)
    }

    /// Parses on a blocking thread while the loader COPYs on this one, so a
    /// file of any size streams through a few batches of memory. The outer
    /// error is worth retrying; the inner one rejects the file.
    async fn load(
        &self,
        reader: ObjectReader,
    ) -> Result<Result<(FileKind, LoadCounts, ParseOutcome), FileError>, IngestError> {
        let (kind_tx, kind_rx) = oneshot::channel();
        let (orders_tx, orders_rx) = mpsc::channel(BATCHES_IN_FLIGHT);
        let (barcodes_tx, barcodes_rx) = mpsc::channel(BATCHES_IN_FLIGHT);
        let bridge = SyncIoBridge::new(reader);
        let parser = tokio::task::spawn_blocking(move || {
            parse_file(bridge, kind_tx, orders_tx, barcodes_tx)
        });

        let loaded = match kind_rx.await {
            Ok(FileKind::Orders) => self
                .db
                .load_orders(orders_rx)
                .await
                .map(|c| (FileKind::Orders, c)),
            Ok(FileKind::Barcodes) => self
                .db
                .load_barcodes(barcodes_rx)
                .await
                .map(|c| (FileKind::Barcodes, c)),
            // The parser gave up before knowing the kind; its result says why.
            Err(_) => Err(DbError::InputIncomplete),
        };
        let parsed = parser
            .await
            .map_err(|e| IngestError::Internal(format!("CSV parser thread: {e}")))?;
        match (parsed, loaded) {
            (Err(file_error), _) => Ok(Err(file_error)),
            (Ok(parsed), Ok((kind, counts))) => Ok(Ok((kind, counts, parsed))),
            (Ok(_), Err(db_error)) => Err(db_error.into()),
        }
    }

    /// Regenerates `processed/processed_orders.csv` from the database.
    pub async fn publish_processed_orders(&self, bucket: &str) -> Result<u64, IngestError> {
        let mut writer = ProcessedOrdersWriter::new(Vec::new())
            .map_err(|e| IngestError::Output(e.to_string()))?;
        let written = self
            .db
            .for_each_processed_order(|order| {
                writer
                    .write(&order)
                    .map_err(|e| IngestError::Output(e.to_string()))
            })
            .await?;
        let body = writer
            .finish()
            .map_err(|e| IngestError::Output(e.to_string()))?;
        self.store
            .put(
                bucket,
                PROCESSED_ORDERS_KEY,
                body,
                "text/csv; charset=utf-8",
            )
            .await?;
        Ok(written)
    }
}

/// Runs on a blocking thread: reads the header, announces the kind, then
/// streams valid rows in batches and collects rejections.
fn parse_file<R: std::io::Read>(
    input: R,
    kind_tx: oneshot::Sender<FileKind>,
    orders_tx: mpsc::Sender<Batch<crate::domain::OrderRow>>,
    barcodes_tx: mpsc::Sender<Batch<crate::domain::BarcodeRow>>,
) -> Result<ParseOutcome, FileError> {
    let mut rows = CsvRows::open(input)?;
    let kind = rows.kind();
    let _ = kind_tx.send(kind);
    let mut outcome = ParseOutcome::default();
    match kind {
        FileKind::Orders => {
            drop(barcodes_tx);
            stream_rows(&mut rows, &orders_tx, &mut outcome, |row| match row {
                Row::Order(order) => Some(order),
                Row::Barcode(_) => None,
            })?;
        }
        FileKind::Barcodes => {
            drop(orders_tx);
            stream_rows(&mut rows, &barcodes_tx, &mut outcome, |row| match row {
                Row::Barcode(barcode) => Some(barcode),
                Row::Order(_) => None,
            })?;
        }
    }
    Ok(outcome)
}

fn stream_rows<R: std::io::Read, T>(
    rows: &mut CsvRows<R>,
    tx: &mpsc::Sender<Batch<T>>,
    outcome: &mut ParseOutcome,
    pick: impl Fn(Row) -> Option<T>,
) -> Result<(), FileError> {
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    while let Some(row) = rows.next_row()? {
        match row {
            Ok(row) => batch.extend(pick(row)),
            Err(rejected) => {
                outcome.rejected_rows += 1;
                if outcome.rejects.len() < MAX_REPORTED_REJECTS {
                    outcome.rejects.push(rejected);
                }
            }
        }
        if batch.len() == BATCH_ROWS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
            if tx.blocking_send(Batch::Rows(full)).is_err() {
                // The loader stopped (database error); it reports why.
                return Ok(());
            }
        }
    }
    if !batch.is_empty() && tx.blocking_send(Batch::Rows(batch)).is_err() {
        return Ok(());
    }
    let _ = tx.blocking_send(Batch::Complete);
    Ok(())
}
