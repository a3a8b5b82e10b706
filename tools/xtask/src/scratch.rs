//! A run's own world: databases and a bucket (with its queues) named after
//! the run, so parallel runs and other engineers' tests never meet; all of
//! it removed by [`Scratch::tear_down`], whatever happened before.

use anyhow::Result;
use pipeline_local::resources::{self, QueueSettings, ResourceNames};
use tokio_postgres::Client;

use crate::postgres;
use crate::workspace::{self, say};

pub struct Scratch {
    pub stamp: String,
    pub admin_url: String,
    pub names: ResourceNames,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    admin: Client,
    databases: Vec<String>,
}

impl Scratch {
    /// Names for a run of `prefix` (`bench_api` gives databases
    /// `bench_api_<stamp>...` and bucket `bench-api-<stamp>`); nothing is
    /// created yet.
    pub async fn new(prefix: &str, admin_url: String) -> Result<Self> {
        let stamp = workspace::stamp();
        let bucket = format!("{prefix}-{stamp}").replace('_', "-");
        let sdk = pipeline_local::sdk_config(workspace::LOCALSTACK).await;
        Ok(Self {
            admin: postgres::connect(&admin_url).await?,
            admin_url,
            names: ResourceNames::for_bucket(&bucket),
            s3: order_pipeline::storage::s3_client(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            stamp,
            databases: Vec::new(),
        })
    }

    /// Creates `name`, remembered for the teardown; returns its URL.
    pub async fn database(&mut self, name: &str) -> Result<String> {
        self.databases.push(name.to_owned());
        postgres::create_database(&self.admin, name).await?;
        Ok(postgres::with_database(&self.admin_url, name))
    }

    /// Drops a database before the end (it is not needed again).
    pub async fn drop_database(&mut self, name: &str) -> Result<()> {
        postgres::drop_database(&self.admin, name).await?;
        self.databases.retain(|database| database != name);
        Ok(())
    }

    /// The bucket, its queues and notification, as `pipeline-local bootstrap`.
    pub async fn bootstrap(&self) -> Result<()> {
        resources::ensure(&self.s3, &self.sqs, &self.names, QueueSettings::default()).await?;
        Ok(())
    }

    /// Lets the dashboard at `origin` upload to the bucket (its CORS rule).
    pub async fn allow_uploads_from(&self, origin: &str) -> Result<()> {
        resources::allow_uploads_from(&self.s3, &self.names.bucket, &[origin.to_owned()]).await
    }

    pub fn admin(&self) -> &Client {
        &self.admin
    }

    /// Drops the databases and deletes the bucket and queues; reports what
    /// it could not remove and carries on.
    pub async fn tear_down(self) {
        if !self.databases.is_empty() {
            say(&format!("dropping {}", self.databases.join(" ")));
        }
        for database in &self.databases {
            if let Err(error) = postgres::drop_database(&self.admin, database).await {
                eprintln!("teardown: {error:#}");
            }
        }
        say(&format!(
            "deleting s3://{} and its queues",
            self.names.bucket
        ));
        if let Err(error) = resources::remove(&self.s3, &self.sqs, &self.names).await {
            eprintln!("teardown: {error:#}");
        }
    }
}
