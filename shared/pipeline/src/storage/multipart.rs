//! S3 multipart uploads: one way to start, complete or abort them, and the
//! parts of a local file, uploaded a few at a time while the next is read.

use std::future::Future;
use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::io::AsyncReadExt;

use super::{bare_etag, NewObject, Operation, S3Store, StorageError, PARTS_IN_FLIGHT};

impl S3Store {
    /// A multipart upload of `to` whose parts `send_parts` sends, given the
    /// upload id; completed with its parts in order, or aborted on an
    /// error, so no orphaned parts are left behind (they cost money).
    /// Returns the new object's ETag.
    pub(super) async fn multipart<F, Fut>(
        &self,
        to: NewObject<'_>,
        send_parts: F,
    ) -> Result<Option<String>, StorageError>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<Vec<CompletedPart>, StorageError>>,
    {
        let NewObject { bucket, key, .. } = to;
        let failed = |err: Box<dyn std::error::Error + Send + Sync>| {
            StorageError::new(bucket, key, Operation::Write, err)
        };
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(to.content_type)
            .send()
            .await
            .map_err(|e| failed(e.into()))?;
        let upload_id = upload.upload_id.unwrap_or_default();
        let completed = match send_parts(upload_id.clone()).await {
            Ok(mut parts) => {
                parts.sort_by_key(|part| part.part_number());
                self.client
                    .complete_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| failed(e.into()))
            }
            Err(error) => Err(error),
        };
        match completed {
            Ok(completed) => Ok(bare_etag(completed.e_tag())),
            Err(error) => {
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(error)
            }
        }
    }

    /// The parts of the file at `path`, `part_size` each: each goes in its
    /// own task, so it keeps moving while the next one is read.
    pub(super) async fn upload_parts(
        &self,
        to: NewObject<'_>,
        path: &Path,
        upload_id: String,
    ) -> Result<Vec<CompletedPart>, StorageError> {
        let NewObject { bucket, key, .. } = to;
        let io_error = |e: std::io::Error| StorageError::local_file(bucket, key, path, e);
        let mut file = tokio::fs::File::open(path).await.map_err(io_error)?;
        let part_size = self.part_size;
        // Dropped on an error, the set aborts the parts still uploading.
        let mut in_flight = tokio::task::JoinSet::new();
        let mut parts = Vec::new();
        let uploaded = |done: Result<_, tokio::task::JoinError>| match done {
            Ok(Ok((part_number, e_tag))) => Ok(CompletedPart::builder()
                .part_number(part_number)
                .set_e_tag(e_tag)
                .build()),
            Ok(Err(err)) => Err(StorageError::new(bucket, key, Operation::UploadPart, err)),
            Err(join) => Err(StorageError::new(bucket, key, Operation::UploadPart, join)),
        };
        for part_number in 1.. {
            let mut buffer = vec![0u8; part_size];
            let mut filled = 0;
            while filled < part_size {
                let n = file.read(&mut buffer[filled..]).await.map_err(io_error)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            buffer.truncate(filled);
            let request = self
                .client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(part_number)
                .body(ByteStream::from(buffer))
                .send();
            in_flight.spawn(async move { request.await.map(|part| (part_number, part.e_tag)) });
            if in_flight.len() >= PARTS_IN_FLIGHT {
                let done = in_flight.join_next().await.expect("parts in flight");
                parts.push(uploaded(done)?);
            }
            if filled < part_size {
                break;
            }
        }
        while let Some(done) = in_flight.join_next().await {
            parts.push(uploaded(done)?);
        }
        Ok(parts)
    }
}
