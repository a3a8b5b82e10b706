//! Presigned S3 GET URLs: clients download reports, rejects files and the
//! export straight from S3, so big files never pass through a function.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;

/// How long a download link works.
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);

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
    pub async fn get_url(&self, bucket: &str, key: &str) -> Result<String, String> {
        let config = PresigningConfig::expires_in(LINK_LIFETIME).map_err(|e| e.to_string())?;
        self.client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config)
            .await
            .map(|request| request.uri().to_owned())
            .map_err(|e| {
                format!(
                    "presigning s3://{bucket}/{key}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            })
    }
}
