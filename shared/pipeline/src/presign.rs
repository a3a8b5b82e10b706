//! Presigned S3 URLs: clients download reports, rejects files and the
//! export straight from S3, and the dashboard uploads files straight to
//! it, so big files never pass through a function.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;

/// How long a download or upload link works.
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// A download link that could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum PresignError {
    #[error("the link lifetime {0:?} is not one S3 accepts")]
    Lifetime(
        Duration,
        #[source] aws_sdk_s3::presigning::PresigningConfigError,
    ),
    #[error("presigning s3://{bucket}/{key} failed")]
    Signing {
        bucket: String,
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A presigned PUT: the URL, and the headers the upload must send as
/// signed (the content type; the browser sends the signed Content-Length
/// itself, and S3 refuses a body of another length).
#[derive(Debug, Clone)]
pub struct PresignedPut {
    pub url: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Clone)]
pub struct Presigner {
    client: aws_sdk_s3::Client,
}

impl Presigner {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }

    /// A URL that downloads `bucket/key` for [`LINK_LIFETIME`]. Signing is
    /// local (no request to S3), so it does not tell whether the object exists.
    pub async fn get_url(&self, bucket: &str, key: &str) -> Result<String, PresignError> {
        let config = PresigningConfig::expires_in(LINK_LIFETIME)
            .map_err(|e| PresignError::Lifetime(LINK_LIFETIME, e))?;
        self.client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config)
            .await
            .map(|request| request.uri().to_owned())
            .map_err(|source| PresignError::Signing {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                source: Box::new(source),
            })
    }

    /// A URL that uploads exactly `content_length` bytes of `content_type`
    /// to `bucket/key` for [`LINK_LIFETIME`].
    pub async fn put_url(
        &self,
        bucket: &str,
        key: &str,
        content_length: u64,
        content_type: &str,
    ) -> Result<PresignedPut, PresignError> {
        let config = PresigningConfig::expires_in(LINK_LIFETIME)
            .map_err(|e| PresignError::Lifetime(LINK_LIFETIME, e))?;
        let request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_length(content_length as i64)
            .content_type(content_type)
            .presigned(config)
            .await
            .map_err(|source| PresignError::Signing {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                source: Box::new(source),
            })?;
        // What a browser may set itself; it sends Content-Length and Host
        // on its own (and may not set them).
        let headers = request
            .headers()
            .filter(|(name, _)| {
                !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("host")
            })
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Ok(PresignedPut {
            url: request.uri().to_owned(),
            headers,
        })
    }
}
