//! One run's pipeline, made of the real pieces: a fresh database (migrated,
//! with the ingest function's own login user), a bucket with its queue and
//! dead-letter queue made by the real `pipeline-local bootstrap`, the real
//! `pipeline-local forward` feeding the real `ingest` binary through
//! [`LambdaService`], whose S3 traffic goes through [`S3Proxy`]. Torn down
//! by [`World::tear_down`].

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use deadpool_postgres::Pool;
use order_pipeline::config::DatabaseSettings;
use order_pipeline::postgres::roles::{self, DatabaseRole};
use pipeline_local::resources::{self, ResourceNames};
use tokio_postgres::NoTls;

use crate::lambda_service::{FunctionProcess, LambdaService};
use crate::postgres_cluster::PostgresCluster;
use crate::s3_proxy::S3Proxy;

/// Seconds a failed message stays hidden before SQS hands it out again: short,
/// so that retries and dead-lettering take seconds, not the production 30 min.
pub const VISIBILITY_TIMEOUT_SECS: u32 = 3;
/// Receives before a message is dead-lettered: production's (3).
pub const MAX_RECEIVES: u32 = 3;
/// How long one file may take to settle, retries included.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);
/// The password of every function's login user (the cluster trusts loopback).
const LOGIN_PASSWORD: &str = "chaos-login";

/// What every run shares.
pub struct Settings {
    /// Where the workspace's binaries are (target/debug).
    pub bin_dir: PathBuf,
    /// LocalStack's URL.
    pub localstack: String,
    /// Logs of the processes each run starts.
    pub log_dir: PathBuf,
}

/// One version of an input, as the upload made it.
pub struct Uploaded {
    pub key: String,
    pub version_id: String,
    pub etag: String,
}

pub struct World {
    pub name: String,
    pub names: ResourceNames,
    pub database: String,
    pub owner: Pool,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dead_letter_queue_url: String,
    pub lambda: LambdaService,
    pub function: FunctionProcess,
    pub proxy: S3Proxy,
    forwarder: tokio::process::Child,
    admin_url: String,
    /// Each function's own database user.
    login_urls: Vec<(DatabaseRole, String)>,
    localstack: String,
    bin_dir: PathBuf,
}

impl World {
    /// Builds a run's pipeline; `name` (lowercase letters, digits, dashes)
    /// names its bucket and database.
    pub async fn create(
        settings: &Settings,
        cluster: &PostgresCluster,
        name: &str,
    ) -> Result<Self> {
        let database = name.replace('-', "_");
        let admin_url = cluster.admin_url();
        admin(&admin_url, &format!("CREATE DATABASE {database}")).await?;
        let owner = order_pipeline::postgres::pool::connect_pool(&DatabaseSettings {
            url: cluster.owner_url(&database),
            pool_size: 4,
            connect_timeout: Duration::from_secs(10),
        })?;
        order_pipeline::postgres::migrations::migrate(&owner)
            .await
            .with_context(|| format!("migrating {database}"))?;
        let mut login_urls = Vec::new();
        for role in DatabaseRole::ALL {
            let login = format!("chaos_{}", role.function());
            roles::provision_login(&**owner.get().await?, &login, role, LOGIN_PASSWORD).await?;
            login_urls.push((role, cluster.url_of(&database, &login, LOGIN_PASSWORD)));
        }
        let ingest_url = url_of_role(&login_urls, DatabaseRole::Ingest);

        let names = ResourceNames::for_bucket(name);
        run_pipeline_local(
            &settings.bin_dir,
            &settings.localstack,
            name,
            &[
                "bootstrap",
                "--visibility-timeout",
                &VISIBILITY_TIMEOUT_SECS.to_string(),
                "--max-receives",
                &MAX_RECEIVES.to_string(),
            ],
        )
        .await?;
        let sdk = pipeline_local::sdk_config(&settings.localstack).await;
        let s3 = order_pipeline::storage::s3_client(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = resources::queue_url(&sqs, &names.queue).await?;
        let dead_letter_queue_url = resources::queue_url(&sqs, &names.dead_letter_queue).await?;

        let proxy = S3Proxy::start(&settings.localstack).await?;
        let lambda = LambdaService::start().await?;
        let function = lambda.run_function(
            settings.bin_dir.join("ingest"),
            vec![
                ("DATABASE_URL".into(), ingest_url),
                ("AWS_ENDPOINT_URL".into(), proxy.url().to_owned()),
                ("RUST_LOG".into(), "info".into()),
            ]
            .into_iter()
            .chain(aws_env())
            .collect(),
            settings.log_dir.join(format!("{name}.ingest.log")),
        );
        let forwarder = spawn_forwarder(settings, name, lambda.invoke_url())?;
        Ok(Self {
            name: name.to_owned(),
            names,
            database,
            owner,
            s3,
            sqs,
            queue_url,
            dead_letter_queue_url,
            lambda,
            function,
            proxy,
            forwarder,
            admin_url,
            login_urls,
            localstack: settings.localstack.clone(),
            bin_dir: settings.bin_dir.clone(),
        })
    }

    /// The database URL of `role`'s login user.
    pub fn login_url(&self, role: DatabaseRole) -> String {
        url_of_role(&self.login_urls, role)
    }

    /// Uploads `file` as `incoming/<name>`; returns the key.
    pub async fn upload(&self, file: &Path) -> Result<String> {
        Ok(self.upload_version(file).await?.key)
    }

    /// Uploads `file` as `incoming/<name>`; returns the version made.
    pub async fn upload_version(&self, file: &Path) -> Result<Uploaded> {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("input.csv");
        let key = format!("{}{name}", order_pipeline::config::INCOMING_PREFIX);
        let body = aws_sdk_s3::primitives::ByteStream::from_path(file)
            .await
            .with_context(|| format!("reading {}", file.display()))?;
        let put = self
            .s3
            .put_object()
            .bucket(&self.name)
            .key(&key)
            .body(body)
            .send()
            .await
            .map_err(pipeline_local::sdk_error)
            .with_context(|| format!("uploading {key}"))?;
        Ok(Uploaded {
            key,
            version_id: put.version_id().unwrap_or_default().to_owned(),
            etag: put.e_tag().unwrap_or_default().to_owned(),
        })
    }

    /// Sends the bucket's notification for this version of `key` to the
    /// ingest queue again, as SQS's at-least-once delivery may.
    pub async fn deliver_again(&self, uploaded: &Uploaded) -> Result<()> {
        let body = serde_json::json!({"Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventName": "ObjectCreated:Put",
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": {"name": self.name, "arn": format!("arn:aws:s3:::{}", self.name)},
                "object": {"key": uploaded.key, "versionId": uploaded.version_id,
                           "eTag": uploaded.etag}
            }
        }]});
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body.to_string())
            .send()
            .await
            .map_err(pipeline_local::sdk_error)
            .context("sending a notification again")?;
        Ok(())
    }

    /// Waits until `key` is ingested (a final ledger row), processed_orders.csv
    /// shows the data, and the ingest queue is empty.
    pub async fn wait_settled(&self, key: &str) -> Result<()> {
        self.wait_until(key, true).await
    }

    /// Waits until `key` is ingested and the ingest queue is empty, whether
    /// or not processed_orders.csv is current (a sale makes it stale until
    /// the next event).
    pub async fn wait_ingested(&self, key: &str) -> Result<()> {
        self.wait_until(key, false).await
    }

    async fn wait_until(&self, key: &str, published: bool) -> Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            if self.is_settled(key, published).await.unwrap_or(false) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{key} did not settle within {} s (ledger final, queue empty{}); \
                 see the logs of run {}",
                SETTLE_TIMEOUT.as_secs(),
                if published {
                    ", processed_orders.csv current"
                } else {
                    ""
                },
                self.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn is_settled(&self, key: &str, published_too: bool) -> Result<bool> {
        let client = self.owner.get().await?;
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM ingestions WHERE bucket = $1 AND key = $2
                                AND status IN ('loaded', 'rejected')),
                        COALESCE((SELECT p.data_version >= s.output_version
                                  FROM pipeline_stats s
                                  JOIN published_outputs p ON p.destination = $1), false)",
                &[&self.name, &key],
            )
            .await?;
        let (final_row, published): (bool, bool) = (row.get(0), row.get(1));
        Ok(final_row
            && (published || !published_too)
            && self.queue_depth(&self.queue_url).await? == 0)
    }

    /// Messages waiting plus messages in flight.
    pub async fn queue_depth(&self, queue_url: &str) -> Result<u64> {
        resources::queue_depth(&self.sqs, queue_url).await
    }

    /// `make redrive`'s command, for this run's bucket.
    pub async fn redrive(&self) -> Result<()> {
        run_pipeline_local(&self.bin_dir, &self.localstack, &self.name, &["redrive"]).await
    }

    /// Stops the processes, deletes the bucket (every version), the queues
    /// and the database.
    pub async fn tear_down(mut self) -> Result<()> {
        let _ = self.forwarder.start_kill();
        let _ = self.forwarder.wait().await;
        drop(self.function);
        self.owner.close();
        resources::delete_bucket(&self.s3, &self.name).await?;
        for queue in [&self.queue_url, &self.dead_letter_queue_url] {
            self.sqs
                .delete_queue()
                .queue_url(queue)
                .send()
                .await
                .map_err(pipeline_local::sdk_error)?;
        }
        admin(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database),
        )
        .await
    }
}

fn url_of_role(login_urls: &[(DatabaseRole, String)], role: DatabaseRole) -> String {
    login_urls
        .iter()
        .find(|(r, _)| *r == role)
        .map(|(_, url)| url.clone())
        .unwrap_or_default()
}

/// LocalStack's dummy credentials and region, for the processes a run starts.
fn aws_env() -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn pipeline_local_command(
    bin_dir: &Path,
    localstack: &str,
    bucket: &str,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bin_dir.join("pipeline-local"));
    command
        .env_clear()
        .envs(aws_env())
        .env("AWS_ENDPOINT_URL", localstack)
        .args(["--bucket", bucket])
        .kill_on_drop(true);
    command
}

async fn run_pipeline_local(
    bin_dir: &Path,
    localstack: &str,
    bucket: &str,
    args: &[&str],
) -> Result<()> {
    let output = pipeline_local_command(bin_dir, localstack, bucket)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running pipeline-local {}", args.join(" ")))?;
    anyhow::ensure!(
        output.status.success(),
        "pipeline-local {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

fn spawn_forwarder(
    settings: &Settings,
    bucket: &str,
    invoke_url: &str,
) -> Result<tokio::process::Child> {
    let log_path = settings.log_dir.join(format!("{bucket}.forwarder.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    pipeline_local_command(&settings.bin_dir, &settings.localstack, bucket)
        .args(["forward", "--invoke-url", invoke_url])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting pipeline-local forward")
}

async fn admin(admin_url: &str, statement: &str) -> Result<()> {
    let (client, connection) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .with_context(|| format!("connecting to {admin_url}"))?;
    tokio::spawn(connection);
    client
        .batch_execute(statement)
        .await
        .with_context(|| statement.to_owned())
}
