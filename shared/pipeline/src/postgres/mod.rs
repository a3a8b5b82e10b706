//! The PostgreSQL adapter, one file per use case. Nothing outside this
//! module writes SQL.
//!
//! - [`pool`], [`tls`], [`secret`]: connecting; [`migrations`] and
//!   [`roles`]: the schema and who logs in as what.
//! - [`ledger`]: the ingest ledger (claiming a file version, its outcome).
//! - [`load`]: one file's load transaction; [`export`]: publishing
//!   processed_orders.csv; [`sales`]: selling tickets through the API.
//! - `aggregates`: the one writer of the maintained totals, shared by a
//!   load's commit and a sale; [`locks`]: the advisory locks that order them.
//! - [`read_model`]: the read queries behind the API and the reports.

use deadpool_postgres::Pool;

mod aggregates;
mod copy_buffer;
pub mod export;
mod external_sort;
pub mod ledger;
pub mod load;
pub mod locks;
pub mod migrations;
pub mod pool;
pub mod read_model;
pub mod roles;
pub mod sales;
pub mod secret;
mod sold_barcodes;
pub mod tls;
pub mod transaction;

use load::LoadSettings;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {}", postgres_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database migrations: {0}")]
    Migration(#[from] refinery::Error),
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(tokio_postgres::Error),
    #[error("the input stopped before its end; nothing was stored")]
    InputIncomplete,
    #[error("building the database pool: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The load's SQL recorded a problem the rules do not know.
    #[error("the load's report: {0}")]
    Problem(#[from] crate::domain::outcome::UnknownProblem),
    #[error(transparent)]
    LedgerStatus(#[from] crate::domain::outcome::UnknownLedgerStatus),
    /// Writing a first load's local temporary files (the export, its sort
    /// runs, the ticket totals) failed.
    #[error("writing {what}: {source}")]
    Export {
        what: &'static str,
        source: std::io::Error,
    },
}

impl DbError {
    /// Wraps an I/O error of the local temporary file that holds `what`.
    fn export(what: &'static str) -> impl Fn(std::io::Error) -> DbError + Copy {
        move |source| DbError::Export { what, source }
    }
}

/// The server's own message (severity, text, detail, hint) when there is
/// one: tokio-postgres alone says only "db error".
fn postgres_detail(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => db.to_string(),
        None => err.to_string(),
    }
}

/// Typed access to the order store.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    load: LoadSettings,
}

impl PgStore {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            load: LoadSettings::default(),
        }
    }

    /// Sizes the filter that spots repeated keys during a first load. A tiny
    /// one flags nearly every row, which tests use to drive the exact check.
    pub fn with_repeat_filter_bytes(mut self, bytes: usize) -> Self {
        self.load.repeat_filter_bytes = bytes;
        self
    }

    /// Sizes the memory a first barcodes load sorts in before it spills a
    /// run. A tiny one spills a run every few rows, which tests use to
    /// drive the merge of many runs.
    pub fn with_sort_budget(mut self, bytes: usize) -> Self {
        self.load.sort_budget = bytes;
        self
    }

    /// Sets how many rows a later load must bring, more than, to go into
    /// bulk mode (it must also at least double its table). Zero puts every
    /// such load there, which tests use to drive bulk mode with a few rows.
    pub fn with_bulk_load_min_rows(mut self, rows: i64) -> Self {
        self.load.bulk_load_min_rows = rows;
        self
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A round trip to the database, for health checks.
    pub async fn ping(&self) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}
