//! Ingesting one object: stream it out of storage, parse it on a blocking
//! thread, COPY every row into PostgreSQL inside one transaction, write the
//! report and rejects file, commit, then republish `processed_orders.csv`.
//! Knows the ports ([`ObjectStore`], [`PgStore`]), not how they are reached.

use std::io::Write;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio_util::io::SyncIoBridge;

use crate::carried_text::spreadsheet_cell;
use crate::config::PROCESSED_ORDERS_KEY;
use crate::csv_input::{CsvRows, FileError, FileKind, ReadError, RejectedRow, Row};
use crate::csv_records::CsvLimits;
use crate::domain::{BarcodeRow, OrderRow};
use crate::postgres::ledger::{Claim, LedgerEntry, ObjectVersion};
use crate::postgres::load::problems::Problem;
use crate::postgres::load::{Batch, Committed, LoadCounts, LoadSession};
use crate::postgres::{DbError, PgStore};
use crate::processed::ExportFile;
use crate::storage::{ObjectRef, ObjectStore, OpenedObject, StorageError};

/// Rows per message between the parser thread and the loader.
const BATCH_ROWS: usize = 8192;
/// Batches in flight: bounds memory whatever the file size.
const BATCHES_IN_FLIGHT: usize = 4;
/// Problems listed in a report (all are counted, and all rejected rows are in
/// the rejects file).
pub const REPORTED_PROBLEMS: i64 = 100;

/// Where the reports of one version of an input go:
/// `reports/<input key>/<version>.json` and
/// `reports/<input key>/<version>.rejected.csv`, so that a newer version
/// never overwrites an older one's. `<version>` is the S3 version id, or in
/// an unversioned bucket the ETag (`etag-<etag>`).
pub fn report_keys(version: &ObjectVersion) -> (String, String) {
    let stem = format!("reports/{}/{}", version.key, version_token(version));
    (format!("{stem}.json"), format!("{stem}.rejected.csv"))
}

/// The version id or ETag as one path segment: characters other than
/// `A-Z a-z 0-9 . _ -` are percent-encoded.
fn version_token(version: &ObjectVersion) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'.')
        .remove(b'_')
        .remove(b'-');
    let token = match (version.version_id.as_str(), version.etag.as_str()) {
        ("", "") => "unversioned".to_owned(),
        ("", etag) => format!("etag-{etag}"),
        (version_id, _) => version_id.to_owned(),
    };
    percent_encoding::utf8_percent_encode(&token, SEGMENT).to_string()
}

/// A failure worth retrying: the input may well succeed next time (storage or
/// database trouble). A broken file is not an error: it is a rejected report.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("writing {what}: {message}")]
    Output { what: &'static str, message: String },
    #[error("internal: {0}")]
    Internal(String),
}

impl IngestError {
    fn output(what: &'static str, err: impl std::fmt::Display) -> Self {
        Self::Output {
            what,
            message: err.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestStatus {
    /// Loaded (possibly with some rows rejected).
    Loaded,
    /// The file as a whole could not be read; nothing was stored.
    Rejected,
    /// This exact object version was ingested before; nothing changed.
    AlreadyIngested,
    /// The event named content by ETag in an unversioned bucket, and the key
    /// holds other content now: the version named is gone and cannot be
    /// read; the newer content's own event ingests that. Nothing changed.
    Superseded,
}

/// Milliseconds spent in each phase.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Timings {
    /// Reading, parsing, staging and merging.
    pub load_ms: u64,
    /// Writing the report and rejects file, committing.
    pub commit_ms: u64,
    /// Regenerating processed_orders.csv.
    pub publish_ms: u64,
    pub total_ms: u64,
}

/// The outcome of one object's ingest: stored as `reports/<key>.json`,
/// logged, and returned to the caller.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestReport {
    pub ingestion_id: Option<i64>,
    pub bucket: String,
    pub key: String,
    pub etag: String,
    pub version_id: String,
    pub status: IngestStatus,
    pub kind: Option<FileKind>,
    pub counts: LoadCounts,
    /// Header columns that were ignored.
    pub extra_columns: Vec<String>,
    /// The first problems by line (see `counts` for the totals).
    pub problems: Vec<Problem>,
    /// Why the whole file was rejected, or what the earlier ingestion was.
    pub error: Option<String>,
    pub report_key: Option<String>,
    pub rejects_key: Option<String>,
    /// Orders written to processed_orders.csv (None when it was current).
    pub processed_orders_written: Option<u64>,
    pub timings: Timings,
}

impl IngestReport {
    fn new(version: &ObjectVersion, status: IngestStatus) -> Self {
        Self {
            ingestion_id: None,
            bucket: version.bucket.clone(),
            key: version.key.clone(),
            etag: version.etag.clone(),
            version_id: version.version_id.clone(),
            status,
            kind: None,
            counts: LoadCounts::default(),
            extra_columns: Vec::new(),
            problems: Vec::new(),
            error: None,
            report_key: None,
            rejects_key: None,
            processed_orders_written: None,
            timings: Timings::default(),
        }
    }
}

/// What the parser thread found besides rows.
struct ParsedHeader {
    kind: FileKind,
    extra_columns: Vec<String>,
}

/// Ingests objects into the store. Built once per cold start.
pub struct Ingestor<S> {
    store: S,
    db: PgStore,
    csv_limits: CsvLimits,
}

impl<S: ObjectStore> Ingestor<S> {
    pub fn new(store: S, db: PgStore) -> Self {
        Self {
            store,
            db,
            csv_limits: CsvLimits::default(),
        }
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

    /// Loads one object exactly once (keyed on bucket, key, ETag and version
    /// id), writes its report, and republishes `processed/processed_orders.csv`
    /// in the same bucket.
    #[tracing::instrument(skip_all, fields(bucket = %object.bucket, key = %object.key))]
    pub async fn ingest(&self, object: &ObjectRef) -> Result<IngestReport, IngestError> {
        let started = Instant::now();
        let opened = match self.store.open(object).await {
            Ok(opened) => opened,
            Err(error) if error.superseded => {
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
                    .already_ingested(&version, ingestion_id, &status, started)
                    .await
            }
        };
        let ingestion_id = session.ingestion_id();
        match self
            .load_and_commit(session, &version, opened.reader, started)
            .await
        {
            Ok((mut report, prepared)) => {
                let publish_started = Instant::now();
                report.processed_orders_written = self
                    .publish_processed_orders_from(&version.bucket, prepared)
                    .await?;
                report.timings.publish_ms = publish_started.elapsed().as_millis() as u64;
                report.timings.total_ms = started.elapsed().as_millis() as u64;
                log_report(&report);
                Ok(report)
            }
            Err(LoadFailure::File(file_error)) => {
                self.reject_whole(&version, &file_error, started).await
            }
            Err(LoadFailure::Retry(error)) => {
                tracing::error!(ingestion_id, %error, "ingest failed; rolled back, will be retried");
                // Best effort: the ledger shows the attempt. A delivery that
                // finished the version meanwhile keeps its outcome.
                if let Err(record) = self.db.record_failure(&version, &error.to_string()).await {
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
        status: &str,
        started: Instant,
    ) -> Result<IngestReport, IngestError> {
        let mut report = IngestReport::new(version, IngestStatus::AlreadyIngested);
        report.ingestion_id = Some(ingestion_id);
        report.error = Some(format!(
            "this object version was already ingested (ingestion {ingestion_id}, {status}); nothing changed"
        ));
        // A crash after an earlier commit may have left the output behind.
        report.processed_orders_written = self.publish_processed_orders(&version.bucket).await?;
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
                    .already_ingested(version, ingestion_id, &status, started)
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
        let parser = tokio::task::spawn_blocking(move || {
            parse_file(bridge, limits, header_tx, orders_tx, barcodes_tx)
        });

        let header = header_rx.await;
        // A first barcodes load writes processed_orders.csv from inside its
        // transaction (see LoadSession::load_barcodes); it lands here.
        let mut export = None;
        let loaded = match &header {
            Ok(header) if header.kind == FileKind::Orders => session.load_orders(orders_rx).await,
            Ok(_) => match ExportFile::new() {
                Ok(file) => {
                    let file = export.insert(file);
                    session
                        .load_barcodes(barcodes_rx, &mut |order| file.write(&order))
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
        let parsed = parser.await.map_err(|e| {
            LoadFailure::Retry(IngestError::Internal(format!("CSV parser thread: {e}")))
        })?;
        let counts = match (parsed, loaded) {
            (Err(ReadError::File(file_error)), _) => return Err(LoadFailure::File(file_error)),
            (Err(ReadError::Io { line, source }), _) => {
                return Err(LoadFailure::Retry(
                    StorageError::new(
                        &version.bucket,
                        &version.key,
                        format!(
                            "reading the object failed at line {line} ({source}); will be retried"
                        ),
                        false,
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
        report.report_key = Some(report_key.clone());
        if counts.rejected > 0 {
            self.write_rejects(&session, &version.bucket, &rejects_key)
                .await?;
            report.rejects_key = Some(rejects_key);
        }
        report.timings.load_ms = load_ms;
        let export = match (export, session.exported()) {
            (Some(file), Some(_)) => Some(
                file.finish()
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
        let prepared = export.map(|(file, orders)| PreparedExport {
            file,
            orders,
            committed,
        });
        Ok((report, prepared))
    }

    /// Streams the rejected rows into a temporary file, then uploads it.
    async fn write_rejects(
        &self,
        session: &LoadSession,
        bucket: &str,
        key: &str,
    ) -> Result<(), IngestError> {
        let file =
            tempfile::NamedTempFile::new().map_err(|e| IngestError::output("rejects file", e))?;
        let mut writer = csv::Writer::from_writer(std::io::BufWriter::new(
            file.reopen()
                .map_err(|e| IngestError::output("rejects file", e))?,
        ));
        writer
            .write_record(["line", "field", "value", "reason", "raw"])
            .map_err(|e| IngestError::output("rejects file", e))?;
        session
            .for_each_rejected(|line, field, value, reason, raw| {
                writer
                    .write_record([
                        line.to_string().as_str(),
                        &spreadsheet_cell(field),
                        &spreadsheet_cell(value),
                        &spreadsheet_cell(reason),
                        &spreadsheet_cell(raw),
                    ])
                    .map_err(|e| IngestError::output("rejects file", e))
            })
            .await?;
        writer
            .into_inner()
            .map_err(|e| IngestError::output("rejects file", e))?
            .flush()
            .map_err(|e| IngestError::output("rejects file", e))?;
        self.store
            .put_file(bucket, key, file.path(), "text/csv; charset=utf-8")
            .await?;
        Ok(())
    }

    async fn put_json(
        &self,
        bucket: &str,
        key: &str,
        value: &impl serde::Serialize,
    ) -> Result<(), IngestError> {
        let body =
            serde_json::to_vec_pretty(value).map_err(|e| IngestError::output("report", e))?;
        self.store
            .put(bucket, key, body, "application/json")
            .await?;
        Ok(())
    }

    /// Regenerates `processed/processed_orders.csv` from the database when it
    /// is behind the data, or was deleted or replaced since it was published. Streams through a temporary file, so memory stays
    /// flat; large files are uploaded in parts. Returns the orders written,
    /// or `None` when the published file was already current.
    pub async fn publish_processed_orders(&self, bucket: &str) -> Result<Option<u64>, IngestError> {
        self.publish_processed_orders_from(bucket, None).await
    }

    /// Publishes `prepared`, the export a load wrote inside its transaction,
    /// when it shows the current data; otherwise regenerates the file.
    async fn publish_processed_orders_from(
        &self,
        bucket: &str,
        prepared: Option<PreparedExport>,
    ) -> Result<Option<u64>, IngestError> {
        let output = |e| IngestError::output("processed_orders.csv", e);
        let publish = self.db.begin_publish(bucket).await?;
        if publish.is_current() {
            let etag_now = self.store.etag(bucket, PROCESSED_ORDERS_KEY).await?;
            if publish.is_intact(etag_now.as_deref()) {
                return Ok(None);
            }
            tracing::warn!(
                bucket,
                key = PROCESSED_ORDERS_KEY,
                found = etag_now.as_deref(),
                "the published file is missing or was replaced outside the pipeline; rewriting it"
            );
        }
        let (file, written) = match prepared {
            Some(prepared) if prepared.committed.output_version == publish.data_version => {
                (prepared.file, prepared.orders)
            }
            _ => {
                let mut export = ExportFile::new().map_err(output)?;
                publish
                    .for_each_processed_order(|order| export.write(&order).map_err(output))
                    .await?;
                export.finish().map_err(output)?
            }
        };
        let etag = self
            .store
            .put_file(
                bucket,
                PROCESSED_ORDERS_KEY,
                file.path(),
                "text/csv; charset=utf-8",
            )
            .await?;
        publish.finish(etag.as_deref()).await?;
        Ok(Some(written))
    }
}

/// processed_orders.csv as a load's transaction saw it, waiting for the
/// commit to be published.
struct PreparedExport {
    file: tempfile::NamedTempFile,
    orders: u64,
    committed: Committed,
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

/// Runs on a blocking thread: reads the header, announces it, then streams
/// rows (valid and rejected) in batches.
fn parse_file<R: std::io::Read>(
    input: R,
    limits: CsvLimits,
    header_tx: oneshot::Sender<ParsedHeader>,
    orders_tx: mpsc::Sender<Batch<OrderRow>>,
    barcodes_tx: mpsc::Sender<Batch<BarcodeRow>>,
) -> Result<(), ReadError> {
    let mut rows = CsvRows::open(input, limits)?;
    let kind = rows.kind();
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
