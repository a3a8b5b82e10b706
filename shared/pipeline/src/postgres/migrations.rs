//! Applying the schema migrations safely from anywhere: the `migrate`
//! function after each deploy, `make up` locally. Two runs at once (two
//! deploys, a retried invocation) would race on the same tables, so runs are
//! serialised with a PostgreSQL session-level advisory lock; the second finds
//! nothing left to apply.

use deadpool_postgres::Pool;

use super::DbError;

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// The advisory lock key held while migrations run ("migrate").
pub const MIGRATION_LOCK: i64 = 0x6d_6967_7261_7465;

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(
        "migrating needs a pool of at least 2 connections (one holds the lock, one migrates); \
         it has {0}: raise DATABASE_POOL_SIZE"
    )]
    PoolTooSmall(usize),
}

/// Applies the pending migrations while holding the migration lock, waiting
/// for any other run to finish first. Returns how many this run applied.
pub async fn migrate_exclusively(pool: &Pool) -> Result<usize, MigrationError> {
    let max_size = pool.status().max_size;
    if max_size < 2 {
        return Err(MigrationError::PoolTooSmall(max_size));
    }
    let lock_holder = pool.get().await.map_err(DbError::from)?;
    lock_holder
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(DbError::from)?;
    let applied = migrate(pool).await;
    // Unlock even when migrating failed; closing the session would too.
    let unlocked = lock_holder
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(DbError::from);
    let applied = applied?;
    unlocked?;
    Ok(applied)
}

/// Applies every migration in `migrations/` that has not run yet. Alone it
/// does not keep two runs apart: see [`migrate_exclusively`].
pub async fn migrate(pool: &Pool) -> Result<usize, DbError> {
    let mut client = pool.get().await?;
    let client: &mut tokio_postgres::Client = &mut client;
    let report = embedded::migrations::runner().run_async(client).await?;
    Ok(report.applied_migrations().len())
}
