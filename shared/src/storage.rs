//! Object storage: the port the ingest logic needs, and its S3 adapter.

use std::pin::Pin;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use tokio::io::AsyncRead;

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

#[derive(Debug, thiserror::Error)]
#[error("s3://{bucket}/{key}: {message}")]
pub struct StorageError {
    pub bucket: String,
    pub key: String,
    pub message: String,
    /// True when the object does not exist (deleted, or never written).
    pub not_found: bool,
}

pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

/// What the pipeline needs from object storage.
#[allow(async_fn_in_trait)]
pub trait ObjectStore: Send + Sync {
    /// Opens an object for streaming reads.
    async fn open(&self, bucket: &str, key: &str) -> Result<ObjectReader, StorageError>;
    /// Writes a whole object.
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StorageError>;
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
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }
}

fn storage_error<E>(
    bucket: &str,
    key: &str,
    err: &aws_sdk_s3::error::SdkError<E>,
    not_found: bool,
) -> StorageError
where
    E: std::error::Error + 'static,
{
    StorageError {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        message: DisplayErrorContext(err).to_string(),
        not_found,
    }
}

impl ObjectStore for S3Store {
    async fn open(&self, bucket: &str, key: &str) -> Result<ObjectReader, StorageError> {
        let output = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|err| {
                let not_found = err.as_service_error().is_some_and(|e| e.is_no_such_key());
                storage_error(bucket, key, &err, not_found)
            })?;
        Ok(Box::pin(output.body.into_async_read()))
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|err| storage_error(bucket, key, &err, false))?;
        Ok(())
    }
}
