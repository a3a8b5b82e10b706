//! Object storage: the port the ingest logic needs, its S3 adapter, and an
//! in-memory one ([`memory`]) for tests that need only PostgreSQL.

use std::path::Path;
use std::pin::Pin;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use tokio::io::AsyncRead;

mod compose;
pub mod memory;
mod multipart;

/// Identifies one version of an object: the unit of work of an ingest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectRef {
    pub bucket: String,
    /// The decoded key, as S3 stores it.
    pub key: String,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub size: Option<i64>,
}

impl ObjectRef {
    /// An object named without version details (they are read on open).
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
            etag: None,
            version_id: None,
            size: None,
        }
    }
}

/// A cause of a storage failure: the SDK's error, or an I/O error.
pub type StorageCause = Box<dyn std::error::Error + Send + Sync>;

/// A storage operation on one object failed. What failed and where is its
/// text; why is its `source` (for an SDK error, shown whole at the edge,
/// see [`crate::error_chain::ErrorChain`]).
#[derive(Debug, thiserror::Error)]
#[error("s3://{bucket}/{key}: {operation}")]
pub struct StorageError {
    pub bucket: String,
    pub key: String,
    pub operation: Operation,
    /// True when the object does not exist (deleted, or never written).
    pub not_found: bool,
    /// True when the object was asked for by ETag and the key now holds
    /// other content: the version named is gone (an unversioned bucket
    /// overwrote it), so retrying cannot help.
    pub superseded: bool,
    #[source]
    pub source: Option<StorageCause>,
}

/// What was being done to the object.
#[derive(Debug, thiserror::Error)]
pub enum Operation {
    #[error("opening it failed")]
    Open,
    #[error("no such object")]
    Missing,
    #[error("reading it failed at line {line}; will be retried")]
    Read { line: u64 },
    #[error("writing it failed")]
    Write,
    #[error("uploading a part of it failed")]
    UploadPart,
    #[error("reading {} to upload it failed", .0.display())]
    ReadLocalFile(std::path::PathBuf),
    /// A store over local files (pipeline-local) opening its input.
    #[error("opening {} failed", .0.display())]
    OpenLocalFile(std::path::PathBuf),
    /// A store over local files writing its output.
    #[error("writing {} failed", .0.display())]
    WriteLocalFile(std::path::PathBuf),
    #[error("asking for its ETag failed")]
    Head,
    #[error("copying {0} into it failed")]
    Compose(String),
    #[error("deleting it failed")]
    Delete,
}

impl StorageError {
    pub fn new(
        bucket: &str,
        key: &str,
        operation: Operation,
        source: impl Into<StorageCause>,
    ) -> Self {
        Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            operation,
            not_found: false,
            superseded: false,
            source: Some(source.into()),
        }
    }

    /// The object is not there (no cause beyond that).
    pub fn missing(bucket: &str, key: &str) -> Self {
        Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            operation: Operation::Missing,
            not_found: true,
            superseded: false,
            source: None,
        }
    }

    /// Marks the object as not found.
    pub fn not_found(mut self) -> Self {
        self.not_found = true;
        self
    }

    /// A local file that could not be read for an upload.
    fn local_file(
        bucket: &str,
        key: &str,
        path: &std::path::Path,
        err: impl Into<StorageCause>,
    ) -> Self {
        Self::new(bucket, key, Operation::ReadLocalFile(path.to_owned()), err)
    }
}

pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

/// An opened object: its bytes, and which version of it they are.
pub struct OpenedObject {
    pub reader: ObjectReader,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub size: Option<i64>,
    /// When the object was created (S3's LastModified), for the ingest lag.
    pub last_modified: Option<std::time::SystemTime>,
}

/// Objects at least this large are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// Part size of multipart uploads (S3's minimum is 5 MiB). Small parts keep
/// the function's memory flat: at most [`PARTS_IN_FLIGHT`] part buffers are
/// uploading while the next one is read.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded at once: one request at a time leaves the connection idle
/// while the next part is read and checksummed, and the server idle between
/// parts.
const PARTS_IN_FLIGHT: usize = 3;

/// What the pipeline needs from object storage.
#[allow(async_fn_in_trait)]
pub trait ObjectStore: Send + Sync {
    /// Opens exactly the version `object` names for streaming reads: its
    /// version id when it has one, else the content with its ETag; the
    /// latest content only when it names neither.
    async fn open(&self, object: &ObjectRef) -> Result<OpenedObject, StorageError>;
    /// Uploads a local file (in parts when large), so big outputs never sit
    /// in memory. Returns the new object's ETag when the store reports one.
    async fn put_file(
        &self,
        to: NewObject<'_>,
        path: &Path,
    ) -> Result<Option<String>, StorageError>;
    /// The ETag of the object at `key` now, or `None` when there is none:
    /// how a publisher sees that its output was deleted or replaced.
    async fn etag(&self, bucket: &str, key: &str) -> Result<Option<String>, StorageError>;
    /// Writes a whole object.
    async fn put(&self, to: NewObject<'_>, body: Vec<u8>) -> Result<(), StorageError>;
    /// Writes the object made of `sources` (objects in the same bucket),
    /// one after the other, on the store's side: none of their bytes pass
    /// through here. On S3 each source but the last must hold at least
    /// [`MIN_PART_SIZE`] bytes, a multipart upload's smallest part. A source
    /// that names an ETag is taken only with that content: another is an
    /// error marked `superseded`, a missing one `not_found`. Returns the
    /// new object's ETag when the store reports one.
    async fn compose(
        &self,
        to: NewObject<'_>,
        sources: &[ComposeSource<'_>],
    ) -> Result<Option<String>, StorageError>;
    /// Deletes the object at `key`; deleting what is not there succeeds.
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError>;
    /// The smallest source [`ObjectStore::compose`] takes but the last.
    fn min_part_size(&self) -> u64 {
        MIN_PART_SIZE
    }
}

/// The smallest part of an S3 multipart upload but the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// One source of [`ObjectStore::compose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComposeSource<'a> {
    pub key: &'a str,
    /// The content it must hold (If-Match), when that matters.
    pub etag: Option<&'a str>,
}

impl<'a> ComposeSource<'a> {
    /// Whatever `key` holds.
    pub fn any(key: &'a str) -> Self {
        Self { key, etag: None }
    }
}

/// The content type of every CSV the pipeline writes.
pub const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// Where an output goes, and what readers are told it holds.
#[derive(Debug, Clone, Copy)]
pub struct NewObject<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub content_type: &'a str,
}

/// Builds the S3 client once per cold start. Against LocalStack (any
/// `AWS_ENDPOINT_URL`, or `S3_FORCE_PATH_STYLE=true`) path-style addressing is
/// used, since `bucket.localhost` does not resolve.
pub fn s3_client(sdk_config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let force_path_style = sdk_config.endpoint_url().is_some()
        || std::env::var("S3_FORCE_PATH_STYLE").is_ok_and(|v| v == "true" || v == "1");
    let config = aws_sdk_s3::config::Builder::from(sdk_config)
        .force_path_style(force_path_style)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// [`ObjectStore`] over Amazon S3 (or LocalStack).
#[derive(Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    multipart_threshold: u64,
    part_size: usize,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self {
            client,
            multipart_threshold: MULTIPART_THRESHOLD,
            part_size: PART_SIZE,
        }
    }

    /// Changes when and how big outputs are split into parts.
    pub fn with_multipart(mut self, threshold: u64, part_size: usize) -> Self {
        self.multipart_threshold = threshold;
        self.part_size = part_size.max(MIN_PART_SIZE as usize);
        self
    }
}

impl S3Store {
    /// One PutObject; the new object's ETag.
    async fn put_body(
        &self,
        to: NewObject<'_>,
        body: ByteStream,
    ) -> Result<Option<String>, StorageError> {
        let put = self
            .client
            .put_object()
            .bucket(to.bucket)
            .key(to.key)
            .content_type(to.content_type)
            .body(body)
            .send()
            .await
            .map_err(|err| StorageError::new(to.bucket, to.key, Operation::Write, err))?;
        Ok(bare_etag(put.e_tag()))
    }
}

/// S3's If-Match value for an ETag.
fn if_match(etag: Option<&str>) -> Option<String> {
    etag.map(|etag| format!("\"{etag}\""))
}

/// A failed request about the object at `key`, marked not found when the
/// object (or the version named) is not there, and superseded when it holds
/// other content than the ETag the request named (If-Match).
fn s3_error<E>(
    bucket: &str,
    key: &str,
    operation: Operation,
    err: SdkError<E, HttpResponse>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.as_service_error().and_then(|e| e.code());
    let not_found = matches!(code, Some("NoSuchKey" | "NoSuchVersion"));
    let superseded = code == Some("PreconditionFailed")
        || err
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 412);
    StorageError {
        not_found,
        superseded,
        ..StorageError::new(bucket, key, operation, err)
    }
}

/// An ETag without the quotes S3 puts around it.
fn bare_etag(etag: Option<&str>) -> Option<String> {
    etag.map(|t| t.trim_matches('"').to_owned())
}

impl ObjectStore for S3Store {
    async fn open(&self, object: &ObjectRef) -> Result<OpenedObject, StorageError> {
        let (bucket, key) = (object.bucket.as_str(), object.key.as_str());
        let request = self.client.get_object().bucket(bucket).key(key);
        // A version id pins the bytes in a versioned bucket; without one, the
        // ETag (If-Match) at least refuses other bytes than the event's.
        let request = match (&object.version_id, &object.etag) {
            (Some(version_id), _) => request.version_id(version_id),
            (None, etag) => request.set_if_match(if_match(etag.as_deref())),
        };
        let output = request
            .send()
            .await
            .map_err(|err| s3_error(bucket, key, Operation::Open, err))?;
        Ok(OpenedObject {
            etag: bare_etag(output.e_tag.as_deref()),
            version_id: output.version_id.clone().filter(|v| v != "null"),
            size: output.content_length,
            last_modified: output
                .last_modified
                .and_then(|time| std::time::SystemTime::try_from(time).ok()),
            reader: Box::pin(output.body.into_async_read()),
        })
    }

    async fn put_file(
        &self,
        to: NewObject<'_>,
        path: &Path,
    ) -> Result<Option<String>, StorageError> {
        let NewObject { bucket, key, .. } = to;
        let io_error = |e: std::io::Error| StorageError::local_file(bucket, key, path, e);
        let size = tokio::fs::metadata(path).await.map_err(io_error)?.len();
        if size < self.multipart_threshold {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| StorageError::local_file(bucket, key, path, e))?;
            return self.put_body(to, body).await;
        }
        self.multipart(to, |upload_id| self.upload_parts(to, path, upload_id))
            .await
    }

    async fn put(&self, to: NewObject<'_>, body: Vec<u8>) -> Result<(), StorageError> {
        self.put_body(to, ByteStream::from(body)).await.map(drop)
    }

    async fn compose(
        &self,
        to: NewObject<'_>,
        sources: &[ComposeSource<'_>],
    ) -> Result<Option<String>, StorageError> {
        self.compose_objects(to, sources).await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| StorageError::new(bucket, key, Operation::Delete, err))?;
        Ok(())
    }

    async fn etag(&self, bucket: &str, key: &str) -> Result<Option<String>, StorageError> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(bare_etag(head.e_tag())),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(err) => Err(StorageError::new(bucket, key, Operation::Head, err)),
        }
    }
}
