//! The advisory locks that order the writers of the shared tables and of
//! processed_orders.csv, and how each is taken. The merge lock is
//! transaction-scoped: a commit, a rollback or a closed connection releases
//! it. The publish lock is a session lock, taken before the publisher's
//! transaction begins, so that transaction's snapshot is taken after the
//! last publisher committed (see `export`); the publisher's connection
//! releases it after its commit, or closes. (The migrations' lock is a
//! session lock too and lives with them, in `migrations`.)

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

/// Takes the publish lock for the session, as a publisher of
/// processed_orders.csv does before it begins its transaction.
pub(super) async fn take_publish_lock(client: &Object) -> Result<(), DbError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&PUBLISH_LOCK])
        .await?;
    Ok(())
}

/// Takes the publish lock for the session if it is free; false when another
/// publisher holds it.
pub(super) async fn try_take_publish_lock(client: &Object) -> Result<bool, DbError> {
    let row = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&PUBLISH_LOCK])
        .await?;
    Ok(row.get(0))
}

/// Ends a publisher's transaction with `end` (COMMIT or ROLLBACK), then
/// releases its publish lock: a statement for [`Transaction::end`]. If the
/// end fails, the rest is not run and the connection is closed.
///
/// [`Transaction::end`]: super::transaction::Transaction::end
pub(super) fn end_and_release_publish_lock(end: &str) -> String {
    format!("{end}; SELECT pg_advisory_unlock({PUBLISH_LOCK})")
}
