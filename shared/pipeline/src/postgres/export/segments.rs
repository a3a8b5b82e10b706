//! The segments processed_orders.csv is made of (`export_segments`), and the
//! orders each commit changed in it (`export_changes`): what a publisher
//! reads to rewrite only the segments that changed, and records after.

use deadpool_postgres::Object;

use super::PublishSession;
use crate::postgres::DbError;
use crate::processed::segments::Segment;

/// Which segments of the published file the commits since it show changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedSegments {
    /// Every line may have changed (nothing was published in segments, or a
    /// commit recorded the whole file).
    WholeFile,
    /// The positions of the changed segments, in order.
    Listed(Vec<usize>),
}

/// How a publish changes the segments on record.
#[derive(Debug, Clone, Copy)]
pub struct SegmentUpdate<'a> {
    /// The first order ids of the segments replaced; `None`: all of them.
    pub removed: Option<&'a [i64]>,
    pub added: &'a [Segment],
}

impl PublishSession {
    /// This publish's number at its destination (1 for the first): it names
    /// the segments it writes.
    pub fn publish_number(&self) -> i64 {
        self.state.publishes + 1
    }

    /// The segments the published file is made of, in order.
    pub async fn segments(&self) -> Result<Vec<Segment>, DbError> {
        let rows = self
            .tx
            .client()
            .query(
                "SELECT first_order_id, object_key, etag, bytes, orders FROM export_segments
                 WHERE destination = $1 ORDER BY first_order_id",
                &[&self.destination],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Segment {
                first_order_id: row.get(0),
                object_key: row.get(1),
                etag: row.get(2),
                bytes: row.get::<_, i64>(3) as u64,
                orders: row.get::<_, i64>(4) as u64,
            })
            .collect())
    }

    /// The segments (of `segments`, as [`PublishSession::segments`] gave
    /// them) holding an order that a commit since the last publish changed.
    pub async fn changed_segments(&self, segments: &[Segment]) -> Result<ChangedSegments, DbError> {
        let Some(published) = self.state.published_version else {
            return Ok(ChangedSegments::WholeFile);
        };
        if segments.is_empty() {
            return Ok(ChangedSegments::WholeFile);
        }
        let firsts: Vec<i64> = segments.iter().map(|s| s.first_order_id).collect();
        // width_bucket: the position (from 1) of the last first_order_id at
        // or below the order; NULL for a whole-file change.
        let rows = self
            .tx
            .client()
            .query(
                "SELECT DISTINCT width_bucket(order_id, $3::bigint[]) FROM export_changes
                 WHERE output_version > $1 AND output_version <= $2",
                &[&published, &self.state.data_version, &firsts],
            )
            .await?;
        let mut changed = Vec::with_capacity(rows.len());
        for row in &rows {
            match row.get::<_, Option<i32>>(0) {
                None => return Ok(ChangedSegments::WholeFile),
                Some(bucket) => changed.push(bucket as usize - 1),
            }
        }
        changed.sort_unstable();
        Ok(ChangedSegments::Listed(changed))
    }
}

/// Replaces the segments of `destination` on record as `update` says.
pub(super) async fn replace(
    client: &Object,
    destination: &str,
    update: SegmentUpdate<'_>,
) -> Result<(), DbError> {
    client
        .execute(
            "DELETE FROM export_segments
             WHERE destination = $1 AND ($2::bigint[] IS NULL OR first_order_id = ANY ($2))",
            &[&destination, &update.removed],
        )
        .await?;
    let column = |pick: fn(&Segment) -> i64| update.added.iter().map(pick).collect::<Vec<_>>();
    let keys: Vec<&str> = update.added.iter().map(|s| s.object_key.as_str()).collect();
    let etags: Vec<Option<&str>> = update.added.iter().map(|s| s.etag.as_deref()).collect();
    client
        .execute(
            "INSERT INTO export_segments (destination, first_order_id, object_key, etag, bytes, orders)
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])",
            &[
                &destination,
                &column(|s| s.first_order_id),
                &keys,
                &etags,
                &column(|s| s.bytes as i64),
                &column(|s| s.orders as i64),
            ],
        )
        .await?;
    Ok(())
}

/// Deletes the changes every destination published in segments has
/// published: no publisher needs them again. (A destination without
/// segments regenerates its whole file, and needs none.)
pub(super) async fn forget_published_changes(client: &Object) -> Result<(), DbError> {
    client
        .execute(
            "DELETE FROM export_changes WHERE output_version <= (
                 SELECT min(p.data_version) FROM published_outputs p
                 WHERE EXISTS (SELECT 1 FROM export_segments s WHERE s.destination = p.destination))",
            &[],
        )
        .await?;
    Ok(())
}
