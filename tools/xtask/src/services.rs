//! PostgreSQL and LocalStack for a run: started through scripts/local.sh
//! when they are not running, and (for `bench`) stopped at the end only if
//! this run started them and nobody else has come to use them meanwhile.

use std::time::Duration;

use anyhow::Result;

use crate::postgres;
use crate::workspace::{say, Workspace, LOCALSTACK};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Postgres,
    Localstack,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Localstack => "localstack",
        }
    }
}

/// What this run started.
pub struct Services {
    started: Vec<Service>,
}

impl Services {
    /// `scripts/local.sh services`, remembering which were down before.
    pub async fn start(workspace: &Workspace) -> Result<Self> {
        let mut started = Vec::new();
        if postgres::connect(&workspace.admin_url()).await.is_err() {
            started.push(Service::Postgres);
        }
        if !localstack_up().await {
            started.push(Service::Localstack);
        }
        workspace.local_sh(&["services"]).await?;
        for service in &started {
            say(&format!(
                "started {} for this run (stopped at the end unless someone uses it)",
                service.name()
            ));
        }
        Ok(Self { started })
    }

    /// Stops what [`Services::start`] started, unless it is in use now: a
    /// service started here may have been adopted meanwhile (`make test`
    /// uses whatever answers on the port), and is then left to `make down`.
    pub async fn stop_unused(self, workspace: &Workspace, s3: &aws_sdk_s3::Client) {
        for service in self.started {
            let in_use = match service {
                Service::Postgres => postgres_in_use(&workspace.admin_url()).await,
                Service::Localstack => localstack_in_use(s3).await,
            };
            if in_use {
                say(&format!(
                    "leaving {} running: other clients use it now (make down stops it)",
                    service.name()
                ));
                continue;
            }
            say(&format!(
                "stopping {} (started by this run)",
                service.name()
            ));
            if let Err(error) = workspace.local_sh(&["stop", service.name()]).await {
                eprintln!("teardown: {error:#}");
            }
        }
    }
}

async fn localstack_up() -> bool {
    let health = format!("{LOCALSTACK}/_localstack/health");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    matches!(client.get(health).send().await, Ok(r) if r.status().is_success())
}

/// Other sessions, or databases other than the local pipeline's own.
async fn postgres_in_use(admin_url: &str) -> bool {
    let Ok(admin) = postgres::connect(admin_url).await else {
        return false;
    };
    let others = admin
        .query_one(
            "SELECT (SELECT count(*) FROM pg_stat_activity
                     WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())
                  + (SELECT count(*) FROM pg_database
                     WHERE datname NOT IN ('postgres', 'template0', 'template1', 'orders'))",
            &[],
        )
        .await
        .map(|row| row.get::<_, i64>(0));
    // Unknown counts as in use: never stop a server that may be someone's.
    others.map_or(true, |n| n > 0)
}

/// It started empty and this run's bucket is gone: any bucket is someone else's.
async fn localstack_in_use(s3: &aws_sdk_s3::Client) -> bool {
    match s3.list_buckets().send().await {
        Ok(listing) => !listing.buckets().is_empty(),
        Err(_) => true,
    }
}
