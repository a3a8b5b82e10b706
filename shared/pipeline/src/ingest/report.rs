//! What an ingest says about itself: the report (stored, logged, returned),
//! where its files go, and writing them.

use std::io::Write;

use crate::carried_text::spreadsheet_cell;
use crate::csv_input::FileKind;
use crate::postgres::ledger::ObjectVersion;
use crate::postgres::load::problems::Problem;
use crate::postgres::load::{LoadCounts, LoadSession, OrderAtLine};
use crate::storage::{NewObject, ObjectStore, CSV_CONTENT_TYPE};

use super::{IngestError, Ingestor};

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
    /// From the object's creation in the bucket to the load's commit (the
    /// ingest lag); absent when the store does not say when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_ms: Option<u64>,
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
    /// The first orders stored without barcodes, by line (their count is
    /// `counts.orders_without_barcodes`; `GET /problems/orders-without-barcodes`
    /// lists those still without).
    pub first_orders_without_barcodes: Vec<OrderAtLine>,
    /// Why the whole file was rejected, or what the earlier ingestion was.
    pub error: Option<String>,
    pub report_key: Option<String>,
    pub rejects_key: Option<String>,
    /// Orders written to processed_orders.csv (None when it was current).
    pub processed_orders_written: Option<u64>,
    pub timings: Timings,
}

impl IngestReport {
    pub(super) fn new(version: &ObjectVersion, status: IngestStatus) -> Self {
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
            first_orders_without_barcodes: Vec::new(),
            error: None,
            report_key: None,
            rejects_key: None,
            processed_orders_written: None,
            timings: Timings::default(),
        }
    }
}

impl<S: ObjectStore> Ingestor<S> {
    /// Streams the rejected rows into a temporary file, then uploads it.
    pub(super) async fn write_rejects(
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
            .map_err(|e| IngestError::output("rejects file", e.into_error()))?
            .flush()
            .map_err(|e| IngestError::output("rejects file", e))?;
        self.store
            .put_file(
                NewObject {
                    bucket,
                    key,
                    content_type: CSV_CONTENT_TYPE,
                },
                file.path(),
            )
            .await?;
        Ok(())
    }

    pub(super) async fn put_json(
        &self,
        bucket: &str,
        key: &str,
        value: &impl serde::Serialize,
    ) -> Result<(), IngestError> {
        let body =
            serde_json::to_vec_pretty(value).map_err(|e| IngestError::output("report", e))?;
        self.store
            .put(
                NewObject {
                    bucket,
                    key,
                    content_type: "application/json",
                },
                body,
            )
            .await?;
        Ok(())
    }
}
