//! Presigned S3 GET URLs: clients download reports, rejects files and the
//! export straight from S3, so big files never pass through a function.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;

/// How long a download link works.
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
        source: Box<aws_sdk_s3::error::SdkError<aws_sdk_s3::operation::get_object::GetObjectError>>,
    },
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
}
