//! The advisory locks that order the writers of the shared tables, and how
//! each is taken. Both are transaction-scoped: a commit, a rollback or a
//! closed connection releases them. (The migrations' lock is a session lock
//! and lives with them, in `migrations`.)

use deadpool_postgres::Object;

use super::DbError;

/// Serialises merges into the shared tables, so that two files ingested at
/// once give the same result as one after the other. Staging (the bulk of
/// the work) still runs in parallel. Sales take it shared.
pub const MERGE_LOCK: i64 = 0x6f72_6465_7273; // "orders"
/// Serialises publishers of processed_orders.csv, so an older snapshot never
/// overwrites a newer one.
pub const PUBLISH_LOCK: i64 = 0x7075_626c_6973; // "publis"

/// Takes the merge lock exclusively, as a load does before it merges (or
/// writes a table directly): until its commit nobody else merges or sells.
pub(super) async fn take_merge_lock(client: &Object) -> Result<(), DbError> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MERGE_LOCK])
        .await?;
    Ok(())
}

/// Takes the merge lock shared, as a sale does: sales run side by side, but
/// never while a load merges.
pub(super) async fn take_merge_lock_shared(client: &Object) -> Result<(), DbError> {
    client
        .execute("SELECT pg_advisory_xact_lock_shared($1)", &[&MERGE_LOCK])
        .await?;
    Ok(())
}

/// Takes the publish lock, as a publisher of processed_orders.csv does.
pub(super) async fn take_publish_lock(client: &Object) -> Result<(), DbError> {
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&PUBLISH_LOCK])
        .await?;
    Ok(())
}

/// Takes the publish lock if it is free; false when another publisher holds
/// it.
pub(super) async fn try_take_publish_lock(client: &Object) -> Result<bool, DbError> {
    let row = client
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PUBLISH_LOCK])
        .await?;
    Ok(row.get(0))
}
