//! The parser thread: reads the CSV on a blocking thread and hands the
//! loader its header, then its rows in bounded batches.

use tokio::sync::{mpsc, oneshot};

use crate::csv_input::{CsvRows, FileError, FileKind, ReadError, RejectedRow, Row};
use crate::csv_records::CsvLimits;
use crate::domain::{BarcodeRow, OrderRow};
use crate::postgres::load::Batch;

/// Rows per message between the parser thread and the loader.
const BATCH_ROWS: usize = 8192;

/// What the parser thread found besides rows.
pub(super) struct ParsedHeader {
    pub(super) kind: FileKind,
    pub(super) extra_columns: Vec<String>,
}

/// Runs on a blocking thread: reads the header, announces it, then streams
/// rows (valid and rejected) in batches.
pub(super) fn parse_file<R: std::io::Read>(
    input: R,
    limits: CsvLimits,
    header_tx: oneshot::Sender<ParsedHeader>,
    orders_tx: mpsc::Sender<Batch<OrderRow>>,
    barcodes_tx: mpsc::Sender<Batch<BarcodeRow>>,
) -> Result<(), ReadError> {
    let mut rows = CsvRows::open(input, limits)?;
    let kind = rows.kind();
    tracing::debug!(
        kind = kind.as_str(),
        extra_columns = rows.extra_columns().len(),
        "header read"
    );
    let _ = header_tx.send(ParsedHeader {
        kind,
        extra_columns: rows.extra_columns().to_vec(),
    });
    match kind {
        FileKind::Orders => {
            drop(barcodes_tx);
            stream_rows(&mut rows, &orders_tx, |row| match row {
                Row::Order(order) => Some(order),
                Row::Barcode(_) => None,
            })
        }
        FileKind::Barcodes => {
            drop(orders_tx);
            stream_rows(&mut rows, &barcodes_tx, |row| match row {
                Row::Barcode(barcode) => Some(barcode),
                Row::Order(_) => None,
            })
        }
    }
}

fn stream_rows<R: std::io::Read, T>(
    rows: &mut CsvRows<R>,
    tx: &mpsc::Sender<Batch<T>>,
    pick: impl Fn(Row) -> Option<T>,
) -> Result<(), ReadError> {
    let mut batch: Vec<Result<T, RejectedRow>> = Vec::with_capacity(BATCH_ROWS);
    let mut seen = 0u64;
    while let Some(row) = rows.next_row()? {
        seen += 1;
        match row {
            Ok(row) => batch.extend(pick(row).map(Ok)),
            Err(rejected) => batch.push(Err(rejected)),
        }
        if batch.len() == BATCH_ROWS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
            if tx.blocking_send(Batch::Rows(full)).is_err() {
                // The loader stopped (database error); it reports why.
                return Ok(());
            }
        }
    }
    if seen == 0 {
        return Err(FileError::HeaderOnly.into());
    }
    if !batch.is_empty() && tx.blocking_send(Batch::Rows(batch)).is_err() {
        return Ok(());
    }
    let _ = tx.blocking_send(Batch::Complete);
    Ok(())
}
