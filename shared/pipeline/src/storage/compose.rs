//! S3's side of [`ObjectStore::compose`](super::ObjectStore::compose): one
//! source is a CopyObject; more are a multipart upload whose parts are
//! server-side copies (UploadPartCopy), a few at a time, so an object of
//! gigabytes is assembled without a byte of it reaching the function.

use aws_sdk_s3::types::{CompletedPart, MetadataDirective};
use futures_util::{StreamExt, TryStreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{bare_etag, NewObject, Operation, S3Store, StorageError, PARTS_IN_FLIGHT};

/// What a copy source's key keeps as it is (S3 wants the rest encoded).
const KEY_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn copy_source(bucket: &str, key: &str) -> String {
    format!("{bucket}/{}", utf8_percent_encode(key, KEY_SAFE))
}

impl S3Store {
    pub(super) async fn compose_objects(
        &self,
        to: NewObject<'_>,
        sources: &[&str],
    ) -> Result<Option<String>, StorageError> {
        let NewObject { bucket, key, .. } = to;
        if let [only] = sources {
            let copied = self
                .client
                .copy_object()
                .bucket(bucket)
                .key(key)
                .copy_source(copy_source(bucket, only))
                .metadata_directive(MetadataDirective::Replace)
                .content_type(to.content_type)
                .send()
                .await
                .map_err(|err| {
                    StorageError::new(bucket, key, Operation::Compose((*only).to_owned()), err)
                })?;
            return Ok(bare_etag(
                copied.copy_object_result().and_then(|r| r.e_tag()),
            ));
        }
        self.multipart(to, |upload_id| self.copy_parts(to, sources, upload_id))
            .await
    }

    async fn copy_parts(
        &self,
        to: NewObject<'_>,
        sources: &[&str],
        upload_id: String,
    ) -> Result<Vec<CompletedPart>, StorageError> {
        let NewObject { bucket, key, .. } = to;
        let upload_id = upload_id.as_str();
        futures_util::stream::iter(sources.iter().zip(1..))
            .map(|(source, part_number)| async move {
                let copied = self
                    .client
                    .upload_part_copy()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(part_number)
                    .copy_source(copy_source(bucket, source))
                    .send()
                    .await
                    .map_err(|err| {
                        StorageError::new(
                            bucket,
                            key,
                            Operation::Compose((*source).to_owned()),
                            err,
                        )
                    })?;
                Ok::<_, StorageError>(
                    CompletedPart::builder()
                        .part_number(part_number)
                        .set_e_tag(
                            copied
                                .copy_part_result()
                                .and_then(|r| r.e_tag().map(str::to_owned)),
                        )
                        .build(),
                )
            })
            .buffered(PARTS_IN_FLIGHT)
            .try_collect()
            .await
    }
}
