//! LocalStack for tests: SDK configuration, and a bucket of a test's own.

use crate::{block_on_cleanup, unique_name};

/// LocalStack on the port `make test` starts it on.
pub const DEFAULT_AWS_ENDPOINT: &str = "http://127.0.0.1:4566";

/// SDK configuration for LocalStack on loopback, with its dummy credentials.
pub async fn localstack_config() -> aws_config::SdkConfig {
    let endpoint =
        std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| DEFAULT_AWS_ENDPOINT.to_owned());
    assert!(
        endpoint.starts_with("http://127.0.0.1") || endpoint.starts_with("http://localhost"),
        "tests only talk to LocalStack on loopback, not {endpoint}"
    );
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "localstack",
        ))
        .load()
        .await
}

/// A bucket created for one test in LocalStack, versioned like the
/// template's bucket.
pub struct TestBucket {
    pub name: String,
    pub client: aws_sdk_s3::Client,
    /// The ETag and version id of the last object put at each key, for the
    /// notifications [`TestBucket::put_event`] builds.
    versions: std::sync::Mutex<std::collections::HashMap<String, (String, Option<String>)>>,
}

impl TestBucket {
    pub async fn create() -> Self {
        let bucket = Self::create_unversioned().await;
        bucket
            .client
            .put_bucket_versioning()
            .bucket(&bucket.name)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("enable versioning");
        bucket
    }

    /// A bucket without versioning: a new upload replaces the old content.
    pub async fn create_unversioned() -> Self {
        let config = localstack_config().await;
        let client = order_pipeline::storage::s3_client(&config);
        let name = unique_name("test");
        client
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create a bucket in LocalStack ({}); run the tests with `make test`, \
                     which starts it",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                )
            });
        Self {
            name,
            client,
            versions: Default::default(),
        }
    }

    /// Writes an object; returns its version id (`None` when unversioned).
    pub async fn put(&self, key: &str, body: impl Into<Vec<u8>>) -> Option<String> {
        let put = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body.into()))
            .send()
            .await
            .expect("put object");
        let etag = put.e_tag().unwrap_or_default().trim_matches('"').to_owned();
        let version_id = put.version_id().filter(|v| *v != "null").map(str::to_owned);
        self.versions
            .lock()
            .unwrap()
            .insert(key.to_owned(), (etag, version_id.clone()));
        version_id
    }

    /// The object's text, or `None` when it does not exist.
    pub async fn get_text(&self, key: &str) -> Option<String> {
        let object = self
            .client
            .get_object()
            .bucket(&self.name)
            .key(key)
            .send()
            .await
            .ok()?;
        let bytes = object
            .body
            .collect()
            .await
            .expect("read object")
            .into_bytes();
        Some(String::from_utf8(bytes.to_vec()).expect("UTF-8 object"))
    }

    /// A direct S3 `ObjectCreated:Put` notification for `key`, as AWS sends
    /// it: naming the ETag and version id of the object last put there
    /// through [`TestBucket::put`].
    pub fn put_event(&self, key: &str) -> serde_json::Value {
        let (etag, version_id) = self
            .versions
            .lock()
            .unwrap()
            .get(key)
            .cloned()
            .unwrap_or_default();
        let mut object = serde_json::json!({"key": key.replace(' ', "+"), "size": 1, "eTag": etag});
        if let Some(version_id) = version_id {
            object["versionId"] = version_id.into();
        }
        serde_json::json!({"Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "2026-11-21T12:00:00.000Z",
            "eventName": "ObjectCreated:Put",
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "ingest-incoming-csv",
                "bucket": {"name": self.name, "arn": format!("arn:aws:s3:::{}", self.name)},
                "object": object
            }
        }]})
    }
}

impl Drop for TestBucket {
    fn drop(&mut self) {
        let bucket = self.name.clone();
        block_on_cleanup(async move {
            // A fresh client: the test's one belongs to the runtime this drop blocks.
            let client = order_pipeline::storage::s3_client(&localstack_config().await);
            // Every version and delete marker goes, or the bucket stays.
            loop {
                let Ok(page) = client.list_object_versions().bucket(&bucket).send().await else {
                    break;
                };
                let versions = page
                    .versions()
                    .iter()
                    .map(|v| (v.key.clone(), v.version_id.clone()))
                    .chain(
                        page.delete_markers()
                            .iter()
                            .map(|m| (m.key.clone(), m.version_id.clone())),
                    )
                    .collect::<Vec<_>>();
                if versions.is_empty() {
                    break;
                }
                for (key, version_id) in versions {
                    let _ = client
                        .delete_object()
                        .bucket(&bucket)
                        .set_key(key)
                        .set_version_id(version_id)
                        .send()
                        .await;
                }
            }
            let _ = client.delete_bucket().bucket(&bucket).send().await;
        });
    }
}
