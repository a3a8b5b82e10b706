//! Publishing `processed/processed_orders.csv`: the export a load prepared
//! inside its transaction, or a fresh one from the database.

use crate::config::PROCESSED_ORDERS_KEY;
use crate::postgres::export::PublishSession;
use crate::postgres::load::Committed;
use crate::processed::ExportFile;
use crate::storage::{NewObject, ObjectStore, CSV_CONTENT_TYPE};

use super::{IngestError, Ingestor};

/// How many times in a row one publisher brings the file up to date while
/// loads keep committing; after that it leaves the rest to the next
/// commit's publisher (or `GET /exports/processed-orders.csv`), so one
/// invocation never spends its time on a stream of other files' output.
const MAX_PUBLISH_ROUNDS: usize = 8;

impl<S: ObjectStore> Ingestor<S> {
    /// Brings `processed/processed_orders.csv` up to date, waiting for a
    /// publish in flight first: when this returns, the file shows at least
    /// the data committed when it was called. Returns the orders written,
    /// or `None` when the file was already current.
    pub async fn publish_processed_orders(&self, bucket: &str) -> Result<Option<u64>, IngestError> {
        let publish = self.db.begin_publish(bucket).await?;
        self.publish_round(bucket, publish, None).await
    }

    /// After a commit: publishes, unless another publisher holds the lock,
    /// in which case this commit is left to it. A publisher repeats until
    /// the file is current, since the commits that found the lock taken
    /// while it wrote are its to publish; a burst of files therefore costs
    /// a few publishes, not one each. `prepared` is the export a load wrote
    /// inside its transaction, used when it still shows the current data.
    pub(super) async fn publish_after_commit(
        &self,
        bucket: &str,
        mut prepared: Option<PreparedExport>,
    ) -> Result<Option<u64>, IngestError> {
        let mut written = None;
        for _ in 0..MAX_PUBLISH_ROUNDS {
            let Some(publish) = self.db.try_begin_publish(bucket).await? else {
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

    /// One publish under the lock `publish` holds: regenerates the file
    /// when it is behind the data, or was deleted or replaced since it was
    /// published. Streams through a temporary file, so memory stays flat;
    /// large files are uploaded in parts.
    async fn publish_round(
        &self,
        bucket: &str,
        publish: PublishSession,
        prepared: Option<PreparedExport>,
    ) -> Result<Option<u64>, IngestError> {
        let output = |e| IngestError::output("processed_orders.csv", e);
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
                "the published file is missing or was replaced outside the pipeline; rewriting it"
            );
        }
        let (file, written) = match prepared {
            Some(prepared) if prepared.committed.output_version == publish.data_version() => {
                (prepared.file, prepared.orders)
            }
            _ => {
                let mut export = ExportFile::new().map_err(output)?;
                publish
                    .for_each_processed_order(|order| export.write(&order).map_err(output))
                    .await?;
                export.finish().map_err(output)?
            }
        };
        let etag = self
            .store
            .put_file(
                NewObject {
                    bucket,
                    key: PROCESSED_ORDERS_KEY,
                    content_type: CSV_CONTENT_TYPE,
                },
                file.path(),
            )
            .await?;
        publish.finish(etag.as_deref()).await?;
        Ok(Some(written))
    }
}

/// processed_orders.csv as a load's transaction saw it, waiting for the
/// commit to be published.
pub(super) struct PreparedExport {
    pub(super) file: tempfile::NamedTempFile,
    pub(super) orders: u64,
    pub(super) committed: Committed,
}
