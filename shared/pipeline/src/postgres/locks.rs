//! The advisory locks that order the writers of the shared tables and of
//! processed_orders.csv, and how each is taken. The merge lock is
//! transaction-scoped: a commit, a rollback or a closed connection releases
//! it. The publish lock is a session lock, taken before the publisher's
//! transaction begins, so that transaction's snapshot is taken after the
//! last publisher committed (see `export`); the publisher's connection
//! releases it after its commit, or closes. (The migrations' lock is a
//! session lock too and lives with them, in `migrations`.)

use std::time::{Duration, Instant};

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

/// Whether a load other than this session's holds the merge lock (a sale's
/// shared hold is not a merge). In this database only: advisory locks are
/// the cluster's, and a bigint key shows in pg_locks as its two halves.
const MERGE_IN_FLIGHT: &str = "
    SELECT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' AND granted
          AND pid <> pg_backend_pid() AND objsubid = 1
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND ((classid::bigint << 32) | objid::bigint) = $1)";

/// How often a publisher looks again whether the merge in flight is done.
const MERGE_POLL: Duration = Duration::from_millis(100);

/// Waits while another load merges, for at most `at_most`; returns how long
/// it waited. A publisher calls it before taking its snapshot: one taken
/// during a merge is behind again at that merge's commit, and in a burst a
/// merge is nearly always running.
pub(super) async fn wait_while_merging(
    client: &Object,
    at_most: Duration,
) -> Result<Duration, DbError> {
    let started = Instant::now();
    while started.elapsed() < at_most
        && client
            .query_one(MERGE_IN_FLIGHT, &[&MERGE_LOCK])
            .await?
            .get::<_, bool>(0)
    {
        tokio::time::sleep(MERGE_POLL.min(at_most.saturating_sub(started.elapsed()))).await;
    }
    Ok(started.elapsed())
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
