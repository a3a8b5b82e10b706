//! S3's side of [`ObjectStore::compose`](super::ObjectStore::compose): one
//! source is a CopyObject; more are a multipart upload whose parts are
//! server-side copies (UploadPartCopy), a few at a time, so an object of
//! gigabytes is assembled without a byte of it reaching the function.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{CompletedPart, MetadataDirective};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use aws_sdk_s3::config::http::HttpResponse;

use super::{
    bare_etag, if_match, s3_error, ComposeSource, NewObject, Operation, S3Store, StorageError,
    PARTS_IN_FLIGHT,
};

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

/// A failed copy of `source` into `to` (see [`s3_error`]: not found when
/// the source is gone, superseded when it holds other content than its
/// ETag).
fn compose_error<E>(to: NewObject<'_>, source: &str, err: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    s3_error(
        to.bucket,
        to.key,
        Operation::Compose(source.to_owned()),
        err,
    )
}

impl S3Store {
    pub(super) async fn compose_objects(
        &self,
        to: NewObject<'_>,
        sources: &[ComposeSource<'_>],
    ) -> Result<Option<String>, StorageError> {
        let NewObject { bucket, key, .. } = to;
        if let [only] = sources {
            let copied = self
                .client
                .copy_object()
                .bucket(bucket)
                .key(key)
                .copy_source(copy_source(bucket, only.key))
                .set_copy_source_if_match(if_match(only.etag))
                .metadata_directive(MetadataDirective::Replace)
                .content_type(to.content_type)
                .send()
                .await
                .map_err(|err| compose_error(to, only.key, err))?;
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
        sources: &[ComposeSource<'_>],
        upload_id: String,
    ) -> Result<Vec<CompletedPart>, StorageError> {
        // A few at a time; a plain loop of futures (not a stream of
        // closures) keeps the future Send for the HTTP handlers.
        let mut parts = Vec::with_capacity(sources.len());
        for (batch, sources) in sources.chunks(PARTS_IN_FLIGHT).enumerate() {
            let mut copies = Vec::with_capacity(sources.len());
            for (i, source) in sources.iter().enumerate() {
                let part_number = (batch * PARTS_IN_FLIGHT + i + 1) as i32;
                copies.push(self.copy_part(to, source, &upload_id, part_number));
            }
            parts.extend(futures_util::future::try_join_all(copies).await?);
        }
        Ok(parts)
    }

    async fn copy_part(
        &self,
        to: NewObject<'_>,
        source: &ComposeSource<'_>,
        upload_id: &str,
        part_number: i32,
    ) -> Result<CompletedPart, StorageError> {
        let copied = self
            .client
            .upload_part_copy()
            .bucket(to.bucket)
            .key(to.key)
            .upload_id(upload_id)
            .part_number(part_number)
            .copy_source(copy_source(to.bucket, source.key))
            .set_copy_source_if_match(if_match(source.etag))
            .send()
            .await
            .map_err(|err| compose_error(to, source.key, err))?;
        Ok(CompletedPart::builder()
            .part_number(part_number)
            .set_e_tag(
                copied
                    .copy_part_result()
                    .and_then(|r| r.e_tag().map(str::to_owned)),
            )
            .build())
    }
}
