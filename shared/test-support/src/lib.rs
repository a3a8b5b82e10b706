//! Test support for the workspace's tests (a dev-dependency only): a fresh database per test, and SDK
//! configuration for the local LocalStack. `make test` starts both servers;
//! run tests through it, or export the URLs below yourself.

use deadpool_postgres::Pool;
use tokio_postgres::NoTls;

use order_pipeline::config::DatabaseSettings;
use order_pipeline::db::{self, PgStore};
use order_pipeline::ingest::{IngestReport, Ingestor};
use order_pipeline::roles::{self, DatabaseRole};
use order_pipeline::storage::{ObjectRef, S3Store};

/// A maintenance database URL on the private test cluster `make test` starts.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:54329/postgres";
pub const DEFAULT_AWS_ENDPOINT: &str = "http://127.0.0.1:4566";

/// A unique, lowercase name for a test resource (database, bucket, queue).
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A database created for one test, migrated, and dropped when the test ends.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub pool: Pool,
    admin_url: String,
}

impl TestDatabase {
    /// A fresh database with every migration applied.
    pub async fn create() -> Self {
        let db = Self::create_empty().await;
        db::migrate(&db.pool)
            .await
            .expect("migrations apply to a fresh database");
        db
    }

    /// A fresh database with no schema at all (for testing migrations).
    pub async fn create_empty() -> Self {
        let admin_url = std::env::var("TEST_DATABASE_ADMIN_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let name = unique_name("test").replace('-', "_");
        let (admin, connection) = tokio_postgres::connect(&admin_url, NoTls)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot reach PostgreSQL at {admin_url} ({e}); run the tests with `make test`, \
                     which starts a private cluster, or set TEST_DATABASE_ADMIN_URL"
                )
            });
        tokio::spawn(connection);
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        let url = replace_db_in_url(&admin_url, &name);
        let pool = db::connect_pool(&DatabaseSettings {
            url: url.clone(),
            pool_size: 4,
            connect_timeout: std::time::Duration::from_secs(10),
        })
        .expect("pool");
        Self {
            name,
            url,
            pool,
            admin_url,
        }
    }

    pub fn store(&self) -> PgStore {
        PgStore::new(self.pool.clone())
    }

    /// A pool connected as `role`'s test login user, as that role's function
    /// connects in AWS and under `make up` (see [`TestDatabase::login_as`]).
    pub async fn pool_as(&self, role: DatabaseRole) -> Pool {
        db::connect_pool(&DatabaseSettings {
            url: self.login_as(role).await,
            pool_size: 4,
            connect_timeout: std::time::Duration::from_secs(10),
        })
        .expect("pool")
    }

    pub async fn store_as(&self, role: DatabaseRole) -> PgStore {
        PgStore::new(self.pool_as(role).await)
    }

    /// The URL of this database for `role`'s test login user
    /// (`<group role>_test`), made or refreshed through the same
    /// [`roles::provision_login`] the migrate function uses.
    pub async fn login_as(&self, role: DatabaseRole) -> String {
        let login = format!("{}_test", role.group());
        let (mut admin, connection) = tokio_postgres::connect(&self.admin_url, NoTls)
            .await
            .expect("admin connection");
        tokio::spawn(connection);
        // Login users are cluster-wide and tests run in parallel: one at a
        // time provisions (advisory locks are per database, and every test's
        // admin connection goes to the same maintenance database).
        let provisioning = admin.transaction().await.expect("begin");
        provisioning
            .execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&LOGIN_PROVISIONING_LOCK],
            )
            .await
            .expect("provisioning lock");
        roles::provision_login(&provisioning, &login, role, TEST_LOGIN_PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        provisioning.commit().await.expect("commit");
        replace_user_in_url(&self.url, &login, TEST_LOGIN_PASSWORD)
    }

    /// The first column of the one row `sql` returns, as an integer.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let client = self.pool.get().await.expect("connection");
        client.query_one(sql, &[]).await.expect(sql).get(0)
    }
}

/// Held on the maintenance database while a test provisions a login user.
const LOGIN_PROVISIONING_LOCK: i64 = 0x6c_6f67_696e; // "login"
/// The test login users' password (a cluster with trust auth ignores it).
const TEST_LOGIN_PASSWORD: &str = "order-pipeline-test-login";

/// A bucket and a database of a test's own, and the ingestor over them.
pub struct TestPipeline {
    pub bucket: TestBucket,
    pub db: TestDatabase,
    pub ingestor: Ingestor<S3Store>,
}

impl TestPipeline {
    pub async fn create() -> Self {
        Self::create_with_store(|store| store).await
    }

    /// Like [`TestPipeline::create`], with the store adjusted by `configure`.
    pub async fn create_with_store(configure: impl FnOnce(PgStore) -> PgStore) -> Self {
        let bucket = TestBucket::create().await;
        let db = TestDatabase::create().await;
        let ingestor = Ingestor::new(S3Store::new(bucket.client.clone()), configure(db.store()));
        Self {
            bucket,
            db,
            ingestor,
        }
    }

    /// Ingests an object already in the bucket; panics on a retryable error.
    pub async fn ingest_key(&self, key: &str) -> IngestReport {
        self.ingestor
            .ingest(&ObjectRef::new(&self.bucket.name, key))
            .await
            .unwrap_or_else(|e| panic!("ingesting {key}: {e}"))
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        self.db.scalar(sql).await
    }

    /// An ingestor over the same bucket, connected as `role`'s login user.
    pub async fn ingestor_as(&self, role: DatabaseRole) -> Ingestor<S3Store> {
        Ingestor::new(
            S3Store::new(self.bucket.client.clone()),
            self.db.store_as(role).await,
        )
    }
}

fn replace_db_in_url(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match base.rsplit_once('/') {
        Some((head, _)) if head.contains('@') || head.contains("//") => format!("{head}/{db}"),
        _ => format!("{base}/{db}"),
    };
    match query {
        Some(query) => format!("{base}?{query}"),
        None => base,
    }
}

/// `url` with its user and password replaced (plain names and passwords:
/// nothing to escape).
fn replace_user_in_url(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let host = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{scheme}://{user}:{password}@{host}")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.pool.close();
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        block_on_cleanup(async move {
            if let Ok((admin, connection)) = tokio_postgres::connect(&admin_url, NoTls).await {
                tokio::spawn(connection);
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        });
    }
}

/// Runs async clean-up from a `Drop`, on a private runtime on its own thread.
pub fn block_on_cleanup<F: std::future::Future<Output = ()> + Send + 'static>(cleanup: F) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(cleanup)
    })
    .join();
}

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

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_in_a_url() {
        assert_eq!(
            super::replace_db_in_url("postgres://postgres@127.0.0.1:54329/postgres", "t1"),
            "postgres://postgres@127.0.0.1:54329/t1"
        );
        assert_eq!(
            super::replace_db_in_url("postgres://u:p@h:1/db?sslmode=disable", "t2"),
            "postgres://u:p@h:1/t2?sslmode=disable"
        );
    }

    #[test]
    fn replaces_the_user_in_a_url() {
        assert_eq!(
            super::replace_user_in_url("postgres://postgres@127.0.0.1:54329/t1", "u", "p"),
            "postgres://u:p@127.0.0.1:54329/t1"
        );
        assert_eq!(
            super::replace_user_in_url("postgres://a:b@h:1/t2?sslmode=disable", "u", "p"),
            "postgres://u:p@h:1/t2?sslmode=disable"
        );
        assert_eq!(
            super::replace_user_in_url("postgres://h:1/t3", "u", "p"),
            "postgres://u:p@h:1/t3"
        );
    }
}

/// The HS256 secret the API tests sign and verify tokens with.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// The verifier the API routers get in tests.
pub fn test_authenticator() -> pipeline_api::http::auth::Authenticator {
    pipeline_api::http::auth::Authenticator::hs256(TEST_JWT_SECRET.as_bytes(), None, None)
}

/// A valid token for `scopes` (space-separated), signed with [`TEST_JWT_SECRET`].
pub fn test_token(scopes: &str) -> String {
    let scopes: Vec<&str> = scopes.split_whitespace().collect();
    pipeline_api::http::auth::issue_hs256(
        TEST_JWT_SECRET.as_bytes(),
        "test",
        &scopes,
        std::time::Duration::from_secs(600),
        None,
        None,
    )
}

/// A token with every scope.
pub fn test_token_all() -> String {
    test_token(&pipeline_api::http::auth::ALL_SCOPES.join(" "))
}

/// An HTTP answer in a test: status, headers and body.
#[derive(Debug)]
pub struct TestResponse {
    pub status: axum::http::StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: bytes::Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }
}

/// Sends `request` through `router` in process.
pub async fn send(
    router: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> TestResponse {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("routers are infallible");
    let (parts, body) = response.into_parts();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.expect("body").to_bytes(),
    }
}

/// A GET with a bearer token (or none).
pub fn get(uri: &str, token: Option<&str>) -> axum::http::Request<axum::body::Body> {
    let mut builder = axum::http::Request::get(uri);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(axum::body::Body::empty()).expect("request")
}

/// A JSON POST with a bearer token.
pub fn post_json(
    uri: &str,
    token: &str,
    body: &serde_json::Value,
    idempotency_key: Option<&str>,
) -> axum::http::Request<axum::body::Body> {
    let mut builder = axum::http::Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(key) = idempotency_key {
        builder = builder.header("idempotency-key", key);
    }
    builder
        .body(axum::body::Body::from(body.to_string()))
        .expect("request")
}

impl TestPipeline {
    /// The pipeline with data/orders.csv and data/barcodes.csv ingested,
    /// plus `extra_unused` unused barcodes (9990000000000 and up) in
    /// incoming/unused.csv, all through the real ingest path.
    pub async fn with_sample_data(extra_unused: usize) -> Self {
        let pipeline = Self::create().await;
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");
        for name in ["orders.csv", "barcodes.csv"] {
            let body = std::fs::read(format!("{root}/{name}")).expect("sample data");
            let key = format!("incoming/{name}");
            pipeline.bucket.put(&key, body).await;
            pipeline.ingest_key(&key).await;
        }
        if extra_unused > 0 {
            let mut body = String::from("barcode,order_id\n");
            for i in 0..extra_unused {
                body.push_str(&format!("{},\n", 9_990_000_000_000u64 + i as u64));
            }
            pipeline.bucket.put("incoming/unused.csv", body).await;
            pipeline.ingest_key("incoming/unused.csv").await;
        }
        pipeline
    }
}

/// An [`ObjectStore`](order_pipeline::storage::ObjectStore) that fails on cue, as S3
/// cannot be made to: the next `failing_reads` opened objects fail
/// mid-stream after `fail_after` bytes, as a reset connection does, and the
/// next `failing_writes` writes under `write_prefix` are refused.
pub struct FaultyStore<S> {
    inner: S,
    fail_after: usize,
    failing_reads: std::sync::atomic::AtomicUsize,
    write_prefix: String,
    failing_writes: std::sync::atomic::AtomicUsize,
}

impl<S> FaultyStore<S> {
    /// A store that passes everything through until told to fail.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            fail_after: 0,
            failing_reads: 0.into(),
            write_prefix: String::new(),
            failing_writes: 0.into(),
        }
    }

    /// The next `reads` opened objects fail after `fail_after` bytes.
    pub fn failing_reads(mut self, reads: usize, fail_after: usize) -> Self {
        self.failing_reads = reads.into();
        self.fail_after = fail_after;
        self
    }

    /// The next `writes` writes of keys under `prefix` are refused.
    pub fn failing_writes(mut self, writes: usize, prefix: &str) -> Self {
        self.failing_writes = writes.into();
        self.write_prefix = prefix.to_owned();
        self
    }

    fn write_allowed(&self, bucket: &str, key: &str) -> Result<(), order_pipeline::storage::StorageError> {
        if key.starts_with(&self.write_prefix) && take_one(&self.failing_writes) {
            return Err(order_pipeline::storage::StorageError::new(
                bucket,
                key,
                "injected: service unavailable",
                false,
            ));
        }
        Ok(())
    }
}

/// Counts one fault down; false once none are left.
fn take_one(faults: &std::sync::atomic::AtomicUsize) -> bool {
    use std::sync::atomic::Ordering;
    faults
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl<S: order_pipeline::storage::ObjectStore> order_pipeline::storage::ObjectStore for FaultyStore<S> {
    async fn open(
        &self,
        object: &ObjectRef,
    ) -> Result<order_pipeline::storage::OpenedObject, order_pipeline::storage::StorageError> {
        let mut opened = self.inner.open(object).await?;
        if take_one(&self.failing_reads) {
            opened.reader = Box::pin(FailAfter {
                inner: opened.reader,
                remaining: self.fail_after,
            });
        }
        Ok(opened)
    }

    async fn put_file(
        &self,
        bucket: &str,
        key: &str,
        path: &std::path::Path,
        content_type: &str,
    ) -> Result<Option<String>, order_pipeline::storage::StorageError> {
        self.write_allowed(bucket, key)?;
        self.inner.put_file(bucket, key, path, content_type).await
    }

    async fn etag(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<String>, order_pipeline::storage::StorageError> {
        self.inner.etag(bucket, key).await
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), order_pipeline::storage::StorageError> {
        self.write_allowed(bucket, key)?;
        self.inner.put(bucket, key, body, content_type).await
    }
}

/// Passes `remaining` bytes through, then fails every read.
struct FailAfter {
    inner: order_pipeline::storage::ObjectReader,
    remaining: usize,
}

impl tokio::io::AsyncRead for FailAfter {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.remaining == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset by peer (injected by the test)",
            )));
        }
        let mut chunk = [0u8; 8192];
        let limit = self.remaining.min(buf.remaining()).min(chunk.len());
        let mut limited = tokio::io::ReadBuf::new(&mut chunk[..limit]);
        std::task::ready!(self.inner.as_mut().poll_read(cx, &mut limited))?;
        let read = limited.filled();
        buf.put_slice(read);
        self.remaining -= read.len();
        std::task::Poll::Ready(Ok(()))
    }
}

/// Log lines written during a test, as [`order_pipeline::telemetry::subscriber`]
/// formats them: pass it as the writer, read [`LogCapture::text`].
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }

    /// Routes this thread's logs, at the level `rust_log` asks for, through
    /// the functions' own subscriber into this capture, until the guard
    /// drops. `#[tokio::test]` runs every task on the test's thread, so
    /// they are all captured.
    pub fn install(&self, rust_log: &str) -> tracing::subscriber::DefaultGuard {
        use tracing_subscriber::util::SubscriberInitExt;
        order_pipeline::telemetry::subscriber(order_pipeline::telemetry::filter(Some(rust_log), None), self.clone())
            .set_default()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}
