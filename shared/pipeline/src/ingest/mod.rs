//! Ingesting one object: stream it out of storage, parse it on a blocking
//! thread, COPY every row into PostgreSQL inside one transaction, write the
//! report and rejects file, commit, then republish `processed_orders.csv`.
//! Knows the ports ([`ObjectStore`], [`PgStore`]), not how they are reached.

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_util::io::SyncIoBridge;

use crate::csv_input::{FileError, FileKind, ReadError};
use crate::csv_records::CsvLimits;

use crate::domain::outcome::LedgerStatus;
use crate::error_chain::ErrorChain;
use crate::postgres::ledger::{Claim, LedgerEntry, ObjectVersion};
use crate::postgres::load::LoadSession;
use crate::postgres::{DbError, PgStore};
use crate::processed::segments::{SegmentLayout, SegmentWriter, FIRST_SEGMENT_START};
use crate::storage::{ObjectRef, ObjectStore, OpenedObject, Operation, StorageError};
use crate::telemetry::spawn_blocking_with_tracing;

mod parse;
mod publish;
pub use publish::PUBLISH_SETTLE;
mod report;

use parse::parse_file;
use publish::PreparedExport;
pub use report::{report_keys, IngestReport, IngestStatus, Timings, REPORTED_PROBLEMS};

/// Batches in flight: bounds memory whatever the file size.
const BATCHES_IN_FLIGHT: usize = 4;

/// A failure worth retrying: the input may well succeed next time (storage or
/// database trouble). A broken file is not an error: it is a rejected report.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("writing {what} failed")]
    Output {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("internal: the CSV parser thread failed")]
    ParserThread(#[source] tokio::task::JoinError),
}

impl IngestError {
    fn output(what: &'static str, err: impl Into<std::io::Error>) -> Self {
        Self::Output {
            what,
            source: err.into(),
        }
    }
}

/// Ingests objects into the store. Built once per cold start.
pub struct Ingestor<S> {
    store: S,
    db: PgStore,
    csv_limits: CsvLimits,
    segment_layout: SegmentLayout,
    publish_settle: Duration,
}

impl<S: ObjectStore> Ingestor<S> {
    pub fn new(store: S, db: PgStore) -> Self {
        Self {
            store,
            db,
            csv_limits: CsvLimits::default(),
            segment_layout: SegmentLayout::default(),
            publish_settle: publish::PUBLISH_SETTLE,
        }
    }

    /// Changes how long a publisher waits for a merge in flight (see
    /// [`PUBLISH_SETTLE`]).
    pub fn with_publish_settle(mut self, settle: Duration) -> Self {
        self.publish_settle = settle;
        self
    }

    /// Changes where processed_orders.csv is cut into segments (see
    /// [`SegmentLayout`]).
    pub fn with_segment_layout(mut self, layout: SegmentLayout) -> Self {
        self.segment_layout = layout;
        self
    }

    /// Changes what one input file may cost (see [`CsvLimits`]).
    pub fn with_csv_limits(mut self, limits: CsvLimits) -> Self {
        self.csv_limits = limits;
        self
    }

    pub fn db(&self) -> &PgStore {
        &self.db
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Where a first load cuts the export it writes: the file is new, so
    /// its size is not known yet.
    fn first_export_target(&self) -> u64 {
        self.segment_layout
            .target_for(0, self.store.min_part_size())
    }

    /// Loads one object exactly once (keyed on bucket, key, ETag and version
    /// id), writes its report, and republishes `processed/processed_orders.csv`
    /// in the same bucket.
    #[tracing::instrument(skip_all, fields(
        bucket = %object.bucket,
        key = %object.key,
        version_id = object.version_id.as_deref(),
    ))]
    pub async fn ingest(&self, object: &ObjectRef) -> Result<IngestReport, IngestError> {
        let report = self.ingest_once(object).await?;
        crate::metrics::record_ingest(&report);
        Ok(report)
    }

    async fn ingest_once(&self, object: &ObjectRef) -> Result<IngestReport, IngestError> {
        let started = Instant::now();
        let opened = match self.store.open(object).await {
            Ok(opened) => opened,
            Err(error) if error.superseded => {
                let error = ErrorChain(&error);
                tracing::warn!(%error, etag = object.etag.as_deref(), "the version named was overwritten before it was read; skipped");
                let mut report =
                    IngestReport::new(&version_read(object, None), IngestStatus::Superseded);
                report.error = Some(format!(
                    "{error}; the bucket is not versioned, so the content this event named is gone"
                ));
                report.timings.total_ms = started.elapsed().as_millis() as u64;
                return Ok(report);
            }
            Err(error) => return Err(error.into()),
        };
        let version = version_read(object, Some(&opened));
        let session = match self.db.begin_ingestion(&version).await? {
            Claim::Claimed(session) => *session,
            Claim::Final {
                ingestion_id,
                status,
            } => {
                return self
                    .already_ingested(&version, ingestion_id, status, started)
                    .await
            }
        };
        let ingestion_id = session.ingestion_id();
        let created = opened.last_modified;
        match self
            .load_and_commit(session, &version, opened.reader, started)
            .await
        {
            Ok((mut report, prepared)) => {
                report.timings.lag_ms = created
                    .and_then(|created| created.elapsed().ok())
                    .map(|lag| lag.as_millis() as u64);
                let publish_started = Instant::now();
                report.processed_orders_written =
                    self.publish_after_commit(&version.bucket, prepared).await?;
                report.timings.publish_ms = publish_started.elapsed().as_millis() as u64;
                report.timings.total_ms = started.elapsed().as_millis() as u64;
                log_report(&report);
                Ok(report)
            }
            Err(LoadFailure::File(file_error)) => {
                self.reject_whole(&version, &file_error, started).await
            }
            Err(LoadFailure::Retry(error)) => {
                let chain = ErrorChain(&error).to_string();
                tracing::error!(ingestion_id, error = %chain, "ingest failed; rolled back, will be retried");
                // Best effort: the ledger shows the attempt. A delivery that
                // finished the version meanwhile keeps its outcome.
                if let Err(record) = self.db.record_failure(&version, &chain).await {
                    tracing::warn!(error = %record, "could not record the failed attempt");
                }
                Err(error)
            }
        }
    }

    /// The answer to a delivery of a version that has its final outcome.
    async fn already_ingested(
        &self,
        version: &ObjectVersion,
        ingestion_id: i64,
        status: LedgerStatus,
        started: Instant,
    ) -> Result<IngestReport, IngestError> {
        let mut report = IngestReport::new(version, IngestStatus::AlreadyIngested);
        report.ingestion_id = Some(ingestion_id);
        report.error = Some(format!(
            "this object version was already ingested (ingestion {ingestion_id}, {status}); nothing changed"
        ));
        // A crash after an earlier commit may have left the output behind.
        report.processed_orders_written = self.publish_after_commit(&version.bucket, None).await?;
        report.timings.total_ms = started.elapsed().as_millis() as u64;
        tracing::info!(ingestion_id, "already ingested; skipped");
        Ok(report)
    }

    /// Records a whole-file rejection (the load rolled back; nothing of the
    /// file is stored). The report is written while the ledger row is held,
    /// and the row becomes final only after, so a rejected version always
    /// has its report: if the write fails, the rejection is not recorded and
    /// the delivery is retried.
    async fn reject_whole(
        &self,
        version: &ObjectVersion,
        file_error: &FileError,
        started: Instant,
    ) -> Result<IngestReport, IngestError> {
        let (report_key, _) = report_keys(version);
        let reason = file_error.to_string();
        let rejection = match self
            .db
            .begin_rejection(version, &reason, &report_key)
            .await?
        {
            Claim::Claimed(rejection) => rejection,
            Claim::Final {
                ingestion_id,
                status,
            } => {
                return self
                    .already_ingested(version, ingestion_id, status, started)
                    .await
            }
        };
        let mut report = IngestReport::new(version, IngestStatus::Rejected);
        report.ingestion_id = Some(rejection.ingestion_id());
        report.error = Some(reason);
        report.report_key = Some(report_key.clone());
        report.timings.total_ms = started.elapsed().as_millis() as u64;
        self.put_json(&version.bucket, &report_key, &report).await?;
        rejection.commit().await?;
        tracing::warn!(reason = %file_error, "file rejected; nothing stored");
        Ok(report)
    }

    /// Everything inside the load transaction. Any error drops the session,
    /// which rolls the transaction back.
    async fn load_and_commit(
        &self,
        mut session: LoadSession,
        version: &ObjectVersion,
        reader: crate::storage::ObjectReader,
        started: Instant,
    ) -> Result<(IngestReport, Option<PreparedExport>), LoadFailure> {
        let (header_tx, header_rx) = oneshot::channel();
        let (orders_tx, orders_rx) = mpsc::channel(BATCHES_IN_FLIGHT);
        let (barcodes_tx, barcodes_rx) = mpsc::channel(BATCHES_IN_FLIGHT);
        let bridge = SyncIoBridge::new(reader);
        let limits = self.csv_limits;
        // The parser thread keeps this object's span: its log lines name it.
        let parser = spawn_blocking_with_tracing(move || {
            parse_file(bridge, limits, header_tx, orders_tx, barcodes_tx)
        });

        let header = header_rx.await;
        // A first barcodes load writes processed_orders.csv from inside its
        // transaction (see LoadSession::load_barcodes); it lands here.
        let mut export = None;
        let loaded = match &header {
            Ok(header) if header.kind == FileKind::Orders => session.load_orders(orders_rx).await,
            Ok(_) => match SegmentWriter::new(FIRST_SEGMENT_START, self.first_export_target()) {
                Ok(writer) => {
                    let writer = export.insert(writer);
                    session
                        .load_barcodes(barcodes_rx, &mut |order| writer.write(&order))
                        .await
                }
                Err(source) => Err(DbError::Export {
                    what: "processed_orders.csv",
                    source,
                }),
            },
            // The parser gave up before knowing the kind; its result says why.
            Err(_) => Err(DbError::InputIncomplete),
        };
        let parsed = parser
            .await
            .map_err(|e| LoadFailure::Retry(IngestError::ParserThread(e)))?;
        let counts = match (parsed, loaded) {
            (Err(ReadError::File(file_error)), _) => return Err(LoadFailure::File(file_error)),
            (Err(ReadError::Io { line, source }), _) => {
                return Err(LoadFailure::Retry(
                    StorageError::new(
                        &version.bucket,
                        &version.key,
                        Operation::Read { line },
                        source,
                    )
                    .into(),
                ))
            }
            (Ok(_), Err(db_error)) => return Err(LoadFailure::Retry(db_error.into())),
            (Ok(()), Ok(counts)) => counts,
        };
        let header = header.expect("a complete parse announced its header");
        let load_ms = started.elapsed().as_millis() as u64;

        let commit_started = Instant::now();
        let (report_key, rejects_key) = report_keys(version);
        let mut report = IngestReport::new(version, IngestStatus::Loaded);
        report.ingestion_id = Some(session.ingestion_id());
        report.kind = Some(header.kind);
        report.counts = counts;
        report.counts.warnings += header.extra_columns.len() as u64;
        report.extra_columns = header.extra_columns;
        report.problems = session.first_problems(REPORTED_PROBLEMS).await?;
        report.first_orders_without_barcodes = session.first_orders_without_barcodes().to_vec();
        report.report_key = Some(report_key.clone());
        if counts.rejected > 0 {
            self.write_rejects(&session, &version.bucket, &rejects_key)
                .await?;
            report.rejects_key = Some(rejects_key);
        }
        report.timings.load_ms = load_ms;
        let export = match (export, session.exported()) {
            (Some(writer), Some(_)) => Some(
                writer
                    .finish(self.store.min_part_size())
                    .map_err(|e| IngestError::output("processed_orders.csv", e))?,
            ),
            _ => None,
        };
        // The report is written before the commit: if the commit fails the
        // retry overwrites it, and a committed load always has its report.
        self.put_json(&version.bucket, &report_key, &report).await?;
        let committed = session
            .commit(&LedgerEntry {
                kind: header.kind.as_str(),
                counts: report.counts,
                report_key,
                rejects_key: report.rejects_key.clone(),
                duration_ms: started.elapsed().as_millis() as i64,
            })
            .await?;
        report.timings.commit_ms = commit_started.elapsed().as_millis() as u64;
        let prepared = export.map(|segments| PreparedExport {
            segments,
            committed,
        });
        Ok((report, prepared))
    }
}

enum LoadFailure {
    /// The file cannot be read as input: reject it, do not retry.
    File(FileError),
    /// Worth retrying.
    Retry(IngestError),
}

impl<E: Into<IngestError>> From<E> for LoadFailure {
    fn from(error: E) -> Self {
        LoadFailure::Retry(error.into())
    }
}

/// The version to remember: the one actually read (S3 says which), else the
/// one the event named.
fn version_read(object: &ObjectRef, opened: Option<&OpenedObject>) -> ObjectVersion {
    let pick = |read: Option<&Option<String>>, named: &Option<String>| {
        read.and_then(Option::clone)
            .or_else(|| named.clone())
            .unwrap_or_default()
    };
    ObjectVersion {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        etag: pick(opened.map(|o| &o.etag), &object.etag),
        version_id: pick(opened.map(|o| &o.version_id), &object.version_id),
    }
}

fn log_report(report: &IngestReport) {
    tracing::info!(
        ingestion_id = report.ingestion_id,
        kind = report.kind.map(FileKind::as_str),
        rows_read = report.counts.rows_read,
        accepted = report.counts.accepted,
        rejected = report.counts.rejected,
        duplicates = report.counts.duplicates,
        warnings = report.counts.warnings,
        processed_orders = report.processed_orders_written,
        load_ms = report.timings.load_ms,
        total_ms = report.timings.total_ms,
        report = report.report_key.as_deref(),
        "ingested"
    );
}
