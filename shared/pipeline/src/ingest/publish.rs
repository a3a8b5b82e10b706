//! Publishing `processed/processed_orders.csv`: the export a load prepared
//! inside its transaction, or a fresh one from the database.

use crate::config::PROCESSED_ORDERS_KEY;
use crate::postgres::load::Committed;
use crate::processed::ExportFile;
use crate::storage::{NewObject, ObjectStore, CSV_CONTENT_TYPE};

use super::{IngestError, Ingestor};

impl<S: ObjectStore> Ingestor<S> {
    /// Regenerates `processed/processed_orders.csv` from the database when it
    /// is behind the data, or was deleted or replaced since it was published. Streams through a temporary file, so memory stays
    /// flat; large files are uploaded in parts. Returns the orders written,
    /// or `None` when the published file was already current.
    pub async fn publish_processed_orders(&self, bucket: &str) -> Result<Option<u64>, IngestError> {
        self.publish_processed_orders_from(bucket, None).await
    }

    /// Publishes `prepared`, the export a load wrote inside its transaction,
    /// when it shows the current data; otherwise regenerates the file.
    pub(super) async fn publish_processed_orders_from(
        &self,
        bucket: &str,
        prepared: Option<PreparedExport>,
    ) -> Result<Option<u64>, IngestError> {
        let output = |e| IngestError::output("processed_orders.csv", e);
        let publish = self.db.begin_publish(bucket).await?;
        if publish.is_current() {
            let etag_now = self.store.etag(bucket, PROCESSED_ORDERS_KEY).await?;
            if publish.is_intact(etag_now.as_deref()) {
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
            Some(prepared) if prepared.committed.output_version == publish.data_version => {
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
