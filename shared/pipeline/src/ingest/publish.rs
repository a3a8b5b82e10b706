//! Publishing `processed/processed_orders.csv`: the file is made of segments
//! by order_id range (see [`crate::processed::segments`]); a publish
//! rewrites the segments whose orders changed since the last one, uploads
//! them, and assembles the file from all segments on the store's side, so
//! it costs what changed. A first load's export, prepared inside its
//! transaction, is published as it is.

use std::time::{Duration, Instant};

use crate::config::PROCESSED_ORDERS_KEY;
use crate::error_chain::ErrorChain;
use crate::postgres::export::{ChangedSegments, PublishSession, SegmentUpdate};
use crate::postgres::load::Committed;
use crate::processed::segments::{
    NewSegment, Segment, SegmentKeys, SegmentWriter, FIRST_SEGMENT_START,
};
use crate::storage::{ComposeSource, NewObject, ObjectStore, StorageError, CSV_CONTENT_TYPE};

use super::{IngestError, Ingestor};

/// How many times in a row one publisher brings the file up to date while
/// loads keep committing; after that it leaves the rest to the next
/// commit's publisher (or `GET /exports/processed-orders.csv`), so one
/// invocation never spends its time on a stream of other files' output.
const MAX_PUBLISH_ROUNDS: usize = 8;

/// How long a publisher waits, at most, for a merge in flight to commit
/// before it takes its snapshot (see [`PgStore::try_begin_publish`]): in a
/// burst it publishes every few seconds, for all the files committed
/// meanwhile, instead of once per commit, and leaves the CPU to the merges.
/// Out of a burst no merge is in flight and it does not wait.
///
/// [`PgStore::try_begin_publish`]: crate::postgres::PgStore::try_begin_publish
pub const PUBLISH_SETTLE: Duration = Duration::from_secs(5);

/// Segments uploaded at once.
const SEGMENTS_IN_FLIGHT: usize = 4;

/// processed_orders.csv as a load's transaction saw it, waiting for the
/// commit to be published.
pub(super) struct PreparedExport {
    pub(super) segments: Vec<NewSegment>,
    pub(super) committed: Committed,
}

/// What one publish writes: new segments in place of some old ones.
struct Rewrite {
    /// The positions (in the segments on record) of those replaced; `None`:
    /// all of them.
    replaced: Option<Vec<usize>>,
    added: Vec<NewSegment>,
    /// How long regenerating them took (0: a load wrote them).
    regenerated_ms: u64,
}

impl<S: ObjectStore> Ingestor<S> {
    /// Brings `processed/processed_orders.csv` up to date, waiting for a
    /// publish in flight first: when this returns, the file shows at least
    /// the data committed when it was called. Returns the orders in the
    /// file, or `None` when it was already current.
    pub async fn publish_processed_orders(&self, bucket: &str) -> Result<Option<u64>, IngestError> {
        let publish = self.db.begin_publish(bucket).await?;
        self.publish_round(bucket, publish, None).await
    }

    /// After a commit: publishes, unless another publisher holds the lock,
    /// in which case this commit is left to it. A publisher repeats until
    /// the file is current, since the commits that found the lock taken
    /// while it wrote are its to publish; a burst of files therefore costs
    /// a few publishes, not one each (fewer still since each round first
    /// waits, up to [`PUBLISH_SETTLE`], for a merge in flight). `prepared`
    /// is the export a load wrote inside its transaction, used when it
    /// still shows the current data.
    pub(super) async fn publish_after_commit(
        &self,
        bucket: &str,
        mut prepared: Option<PreparedExport>,
    ) -> Result<Option<u64>, IngestError> {
        let mut written = None;
        for _ in 0..MAX_PUBLISH_ROUNDS {
            // A first load's export shows its own commit: publish it as it is.
            let settle = match prepared {
                Some(_) => Duration::ZERO,
                None => self.publish_settle,
            };
            let Some(publish) = self.db.try_begin_publish(bucket, settle).await? else {
                tracing::debug!("a publish is in flight; it will include this commit");
                return Ok(written);
            };
            if let Some(orders) = self.publish_round(bucket, publish, prepared.take()).await? {
                written = Some(orders);
            }
            // The lock is free again: a commit that found it taken meanwhile
            // shows here as a file behind the data.
            if self.db.output_is_current(bucket).await? {
                return Ok(written);
            }
        }
        tracing::warn!(
            rounds = MAX_PUBLISH_ROUNDS,
            "processed_orders.csv is still behind after these publishes; the next commit's publisher continues"
        );
        Ok(written)
    }

    /// One publish under the lock `publish` holds, when the file is behind
    /// the data, or was deleted or replaced since it was published (then it
    /// is assembled again from its segments). Returns the orders in it.
    async fn publish_round(
        &self,
        bucket: &str,
        publish: PublishSession,
        prepared: Option<PreparedExport>,
    ) -> Result<Option<u64>, IngestError> {
        if publish.is_current() {
            let etag_now = self.store.etag(bucket, PROCESSED_ORDERS_KEY).await?;
            if publish.is_intact(etag_now.as_deref()) {
                publish.release().await?;
                return Ok(None);
            }
            tracing::warn!(
                bucket,
                key = PROCESSED_ORDERS_KEY,
                found = etag_now.as_deref(),
                "the published file is missing or was replaced outside the pipeline; assembling it again"
            );
        }
        let on_record = publish.segments().await?;
        let rewrite = match prepared {
            Some(prepared) if prepared.committed.output_version == publish.data_version() => {
                Rewrite {
                    replaced: None,
                    added: prepared.segments,
                    regenerated_ms: 0,
                }
            }
            _ => {
                let changed = if publish.is_current() && !on_record.is_empty() {
                    ChangedSegments::Listed(Vec::new())
                } else {
                    publish.changed_segments(&on_record).await?
                };
                self.rewrite(&publish, &on_record, changed).await?
            }
        };
        let (mut publish, mut rewrite) = (publish, rewrite);
        loop {
            // A whole file is made of new segments only: if one of those is
            // gone, regenerating again would not help.
            let whole = rewrite.replaced.is_none();
            match self
                .write_segments(bucket, publish, &on_record, rewrite)
                .await
            {
                Ok(orders) => return Ok(Some(orders)),
                Err(Unassembled::Failed(error)) => return Err(error),
                Err(Unassembled::SegmentMissing(error, _)) if whole => return Err(error.into()),
                Err(Unassembled::SegmentMissing(error, handed_back)) => {
                    tracing::warn!(
                        error = %ErrorChain(&error),
                        "a segment of processed_orders.csv is missing or was replaced; regenerating the whole file"
                    );
                    publish = *handed_back;
                    rewrite = self
                        .rewrite(&publish, &on_record, ChangedSegments::WholeFile)
                        .await?;
                }
            }
        }
    }

    /// Regenerates the segments `changed` names from the database, with
    /// their new content (`on_record` is the file as published).
    async fn rewrite(
        &self,
        publish: &PublishSession,
        on_record: &[Segment],
        changed: ChangedSegments,
    ) -> Result<Rewrite, IngestError> {
        let started = Instant::now();
        let output = |e| IngestError::output("processed_orders.csv", e);
        let min_part = self.store.min_part_size();
        let file_bytes = on_record.iter().map(|s| s.bytes).sum();
        let target = self.segment_layout.target_for(file_bytes, min_part);
        let dirty = match changed {
            ChangedSegments::WholeFile => {
                let mut writer = SegmentWriter::new(FIRST_SEGMENT_START, target).map_err(output)?;
                publish
                    .for_each_processed_order(|order| writer.write(&order).map_err(output))
                    .await?;
                return Ok(Rewrite {
                    replaced: None,
                    added: writer.finish(min_part).map_err(output)?,
                    regenerated_ms: started.elapsed().as_millis() as u64,
                });
            }
            ChangedSegments::Listed(dirty) => dirty,
        };
        // Each run of neighbouring changed segments is written again as one
        // range. A run whose new content is one segment too small to be
        // followed by another takes in the segment after it.
        let (mut replaced, mut added) = (Vec::new(), Vec::new());
        let mut dirty = dirty.into_iter().peekable();
        while let Some(start) = dirty.next() {
            let mut writer =
                SegmentWriter::new(on_record[start].first_order_id, target).map_err(output)?;
            let mut next = start;
            loop {
                let mut end = next;
                while dirty.next_if_eq(&(end + 1)).is_some() {
                    end += 1;
                }
                let last_order = on_record
                    .get(end + 1)
                    .map_or(i64::MAX, |after| after.first_order_id - 1);
                publish
                    .for_each_processed_order_between(
                        on_record[next].first_order_id,
                        last_order,
                        |order| writer.write(&order).map_err(output),
                    )
                    .await?;
                replaced.extend(next..=end);
                next = end + 1;
                if next == on_record.len() || !writer.is_one_below(min_part) {
                    break;
                }
                dirty.next_if_eq(&next);
            }
            added.extend(writer.finish(min_part).map_err(output)?);
        }
        Ok(Rewrite {
            replaced: Some(replaced),
            added,
            regenerated_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Uploads the new segments, assembles the file from all of them,
    /// records them, and deletes the segments they replaced. Returns the
    /// orders in the file.
    async fn write_segments(
        &self,
        bucket: &str,
        publish: PublishSession,
        on_record: &[Segment],
        rewrite: Rewrite,
    ) -> Result<u64, Unassembled> {
        let keys = SegmentKeys::for_publish(publish.publish_number());
        let upload_started = Instant::now();
        // A few at a time; a plain loop of futures (not a stream of
        // closures) keeps the future Send for the HTTP handlers.
        let mut added = Vec::with_capacity(rewrite.added.len());
        for (batch, segments) in rewrite.added.chunks(SEGMENTS_IN_FLIGHT).enumerate() {
            let mut uploads = Vec::with_capacity(segments.len());
            for (i, segment) in segments.iter().enumerate() {
                let key = keys.key(batch * SEGMENTS_IN_FLIGHT + i);
                uploads.push(self.upload_segment(bucket, key, segment));
            }
            added.extend(futures_util::future::try_join_all(uploads).await?);
        }
        let replaced = |i: usize| match &rewrite.replaced {
            None => true,
            Some(replaced) => replaced.binary_search(&i).is_ok(),
        };
        let (gone, kept): (Vec<_>, Vec<_>) = on_record
            .iter()
            .enumerate()
            .partition(|(i, _)| replaced(*i));
        let mut file: Vec<&Segment> = kept.into_iter().map(|(_, s)| s).chain(&added).collect();
        file.sort_unstable_by_key(|s| s.first_order_id);
        let sources: Vec<ComposeSource> = file
            .iter()
            .map(|s| ComposeSource {
                key: &s.object_key,
                etag: s.etag.as_deref(),
            })
            .collect();
        let to = NewObject {
            bucket,
            key: PROCESSED_ORDERS_KEY,
            content_type: CSV_CONTENT_TYPE,
        };
        let (upload_ms, compose_started) = (upload_started.elapsed().as_millis(), Instant::now());
        let etag = match self.store.compose(to, &sources).await {
            Ok(etag) => etag,
            Err(error) if error.not_found || error.superseded => {
                return Err(Unassembled::SegmentMissing(error, Box::new(publish)))
            }
            Err(error) => return Err(Unassembled::Failed(error.into())),
        };
        tracing::info!(
            segments_written = added.len(),
            bytes_written = added.iter().map(|s| s.bytes).sum::<u64>(),
            segments = file.len(),
            file_bytes = file.iter().map(|s| s.bytes).sum::<u64>(),
            regenerate_ms = rewrite.regenerated_ms,
            upload_ms,
            compose_ms = compose_started.elapsed().as_millis(),
            "processed_orders.csv assembled"
        );
        let orders = file.iter().map(|s| s.orders).sum();
        let removed: Vec<i64> = gone.iter().map(|(_, s)| s.first_order_id).collect();
        publish
            .finish(
                etag.as_deref(),
                SegmentUpdate {
                    removed: rewrite.replaced.is_some().then_some(removed.as_slice()),
                    added: &added,
                },
            )
            .await?;
        // Best effort: a segment left behind costs storage, not correctness.
        for (_, segment) in gone {
            if let Err(error) = self.store.delete(bucket, &segment.object_key).await {
                tracing::warn!(
                    key = segment.object_key,
                    error = %ErrorChain(&error),
                    "could not delete a replaced segment of processed_orders.csv"
                );
            }
        }
        Ok(orders)
    }
}

impl<S: ObjectStore> Ingestor<S> {
    async fn upload_segment(
        &self,
        bucket: &str,
        key: String,
        segment: &NewSegment,
    ) -> Result<Segment, StorageError> {
        let to = NewObject {
            bucket,
            key: &key,
            content_type: CSV_CONTENT_TYPE,
        };
        let etag = self.store.put_file(to, segment.file.path()).await?;
        Ok(Segment {
            first_order_id: segment.first_order_id,
            object_key: key,
            etag,
            bytes: segment.bytes,
            orders: segment.orders,
        })
    }
}

/// Why a publish did not assemble the file.
enum Unassembled {
    /// A segment on record is gone from the store, or holds other content
    /// (someone else wrote its key): only regenerating the whole file
    /// helps, in the same session, handed back.
    SegmentMissing(StorageError, Box<PublishSession>),
    Failed(IngestError),
}

impl<E: Into<IngestError>> From<E> for Unassembled {
    fn from(error: E) -> Self {
        Unassembled::Failed(error.into())
    }
}
