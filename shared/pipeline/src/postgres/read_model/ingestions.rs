//! The ingest ledger as the API lists it.

use tokio_postgres::Row;

use crate::domain::outcome::LedgerStatus;
use crate::postgres::{DbError, PgStore};

/// A row of the ingest ledger.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestionRow {
    pub id: i64,
    pub bucket: String,
    pub key: String,
    /// loading, loaded, rejected or failed
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: LedgerStatus,
    /// orders or barcodes (unknown for a file rejected whole)
    pub kind: Option<String>,
    pub rows_read: i64,
    pub accepted: i64,
    pub rejected: i64,
    pub duplicates: i64,
    pub warnings: i64,
    /// New orders stored without barcodes (yet).
    pub orders_without_barcodes: i64,
    pub attempts: i32,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub report_key: Option<String>,
    pub rejects_key: Option<String>,
    /// The S3 version id of the object ingested ("" in an unversioned bucket).
    pub version_id: String,
    /// Its ETag.
    pub etag: String,
}

/// Which ledger rows to list.
#[derive(Debug, Clone, Default)]
pub struct IngestionFilter {
    pub status: Option<LedgerStatus>,
    /// Only the versions of this object key.
    pub key: Option<String>,
}

const INGESTION_COLUMNS: &str = concat!(
    "id, bucket, key, status, kind, rows_read, accepted, rejected, duplicates, warnings, attempts, error, ",
    ts!("started_at"),
    ", ",
    ts!("finished_at"),
    ", duration_ms, report_key, rejects_key, version_id, etag, orders_without_barcodes"
);

fn ingestion(row: &Row) -> Result<IngestionRow, DbError> {
    Ok(IngestionRow {
        id: row.get(0),
        bucket: row.get(1),
        key: row.get(2),
        status: row.get::<_, String>(3).parse()?,
        kind: row.get(4),
        rows_read: row.get(5),
        accepted: row.get(6),
        rejected: row.get(7),
        duplicates: row.get(8),
        warnings: row.get(9),
        attempts: row.get(10),
        error: row.get(11),
        started_at: row.get(12),
        finished_at: row.get(13),
        duration_ms: row.get(14),
        report_key: row.get(15),
        rejects_key: row.get(16),
        version_id: row.get(17),
        etag: row.get(18),
        orders_without_barcodes: row.get(19),
    })
}

impl PgStore {
    /// Ledger rows that `filter` keeps, newest first, with ids below
    /// `before`; at most `limit + 1`.
    pub async fn ingestions(
        &self,
        filter: &IngestionFilter,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<IngestionRow>, DbError> {
        let client = self.pool.get().await?;
        let before = before.unwrap_or(i64::MAX);
        // Planned with the values bound, so an absent filter drops out and
        // the (status, id) or (key, id) index serves the one given.
        let rows = client
            .query(
                &format!(
                    "SELECT {INGESTION_COLUMNS} FROM ingestions
                     WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR key = $2)
                       AND id < $3
                     ORDER BY id DESC LIMIT $4"
                ),
                &[
                    &filter.status.map(|s| s.as_str()),
                    &filter.key,
                    &before,
                    &(limit + 1),
                ],
            )
            .await?;
        rows.iter().map(ingestion).collect()
    }

    pub async fn ingestion(&self, id: i64) -> Result<Option<IngestionRow>, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!("SELECT {INGESTION_COLUMNS} FROM ingestions WHERE id = $1"),
                &[&id],
            )
            .await?;
        row.as_ref().map(ingestion).transpose()
    }
}
