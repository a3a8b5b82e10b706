//! The `migrate` function's work: apply the pending migrations exactly once,
//! however often and from however many places it is invoked.

use deadpool_postgres::Pool;
use order_pipeline::config::DatabaseSettings;
use order_pipeline::migrations::{self, MigrationError};
use serde_json::{json, Value};

/// The pool for migrating: one connection holds the advisory lock, another
/// applies the migrations, whatever DATABASE_POOL_SIZE says.
pub fn pool(settings: &DatabaseSettings) -> Result<Pool, order_pipeline::db::DbError> {
    order_pipeline::db::connect_pool(&DatabaseSettings {
        pool_size: settings.pool_size.max(2),
        ..settings.clone()
    })
}

/// Applies what is pending and answers `{"applied": n}` (0 when the schema
/// was already current).
pub async fn handle(pool: &Pool) -> Result<Value, MigrationError> {
    let applied = migrations::migrate_exclusively(pool).await?;
    tracing::info!(applied, "migrations applied");
    Ok(json!({ "applied": applied }))
}
