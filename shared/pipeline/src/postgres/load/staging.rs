//! How a file's rows go in: all of them through a temporary staging table
//! with binary COPY, or (direct mode) the rows that cannot repeat an earlier
//! line straight into the table's shadow and only the others staged.

use std::pin::pin;

use futures_util::SinkExt;
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;

use super::problems::{PROBLEMS_TABLE, STAGED_REJECTS_TO_PROBLEMS};
use super::rows::{write_staged, DirectRow, StagedRow};
use super::{Batch, LoadSession};
use crate::csv_input::RejectedRow;
use crate::postgres::copy_buffer::CopyBuffer;
use crate::postgres::DbError;
use crate::seen::SeenFilter;

/// Rows the direct load holds back for the staging table (flagged repeats
/// and rejected lines) before it pauses the COPY to write them: bounds memory
/// on files full of bad rows.
const SIDE_ROWS_MAX: usize = 16 * 1024;
const SIDE_BYTES_MAX: usize = 8 << 20;

impl LoadSession {
    /// Streams valid rows straight into their table with binary COPY. A
    /// fixed-size filter flags the rows whose key may repeat an earlier line;
    /// those, and the rejected lines, go to the staging table instead, where
    /// the caller checks them exactly. Each row copied is then handed to
    /// `copied`. Returns the data lines read.
    pub(super) async fn stage_direct<R: DirectRow>(
        &mut self,
        mut batches: mpsc::Receiver<Batch<R>>,
        mut copied: impl FnMut(R) -> Result<(), DbError> + Send,
    ) -> Result<u64, DbError> {
        self.create_staging::<R>().await?;
        let client = self.client();
        let mut seen = SeenFilter::with_bytes(self.settings.repeat_filter_bytes);
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

    /// Streams the rows into a temporary staging table with binary COPY
    /// (PostgreSQL's fastest way in); rejected rows ride along with their
    /// reason so the rejects file can be written from one place.
    pub(super) async fn stage<R: StagedRow>(
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
    async fn create_staging<R: StagedRow>(&mut self) -> Result<(), DbError> {
        self.staged = true;
        self.client()
            .batch_execute(&format!(
                "CREATE TEMP TABLE staging ({}, field text, value text, reason text, raw text) ON COMMIT DROP;
                 {PROBLEMS_TABLE}",
                R::STAGING_COLUMNS
            ))
            .await?;
        Ok(())
    }
}
