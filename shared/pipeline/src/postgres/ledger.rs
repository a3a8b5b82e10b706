//! The ingest ledger (`ingestions`): one row per object version, the
//! idempotency key of an ingest. A load or a whole-file rejection claims the
//! row in its transaction and settles it when it commits; a failure worth
//! retrying is recorded outside any.

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;

use super::load::{LoadCounts, LoadSession};
use super::transaction::Transaction;
use super::{DbError, PgStore};
use crate::domain::outcome::LedgerStatus;

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
    Final {
        ingestion_id: i64,
        status: LedgerStatus,
    },
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

impl PgStore {
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
            LoadSession::new(tx, ingestion_id, self.load)
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
        status: row.get::<_, String>(1).parse()?,
    })
}

/// Completes a load's ledger row with what `entry` says it did.
pub(super) async fn complete_ingestion(
    client: &Object,
    ingestion_id: i64,
    entry: &LedgerEntry,
) -> Result<(), DbError> {
    client
        .execute(
            "UPDATE ingestions SET status = 'loaded', kind = $2, rows_read = $3, accepted = $4,
                 rejected = $5, duplicates = $6, warnings = $7, report_key = $8,
                 rejects_key = $9, finished_at = now(), duration_ms = $10, error = NULL,
                 orders_without_barcodes = $11
             WHERE id = $1",
            &[
                &ingestion_id,
                &entry.kind,
                &(entry.counts.rows_read as i64),
                &(entry.counts.accepted as i64),
                &(entry.counts.rejected as i64),
                &(entry.counts.duplicates as i64),
                &(entry.counts.warnings as i64),
                &entry.report_key,
                &entry.rejects_key,
                &entry.duration_ms,
                &(entry.counts.orders_without_barcodes as i64),
            ],
        )
        .await?;
    Ok(())
}
