//! Test support (feature `testing`): a fresh database per test, and SDK
//! configuration for the local LocalStack. `make test` starts both servers;
//! run tests through it, or export the URLs below yourself.

use deadpool_postgres::Pool;
use tokio_postgres::NoTls;

use crate::config::DatabaseSettings;
use crate::db::{self, PgStore};

/// A maintenance database URL on the private test cluster `make test` starts.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:54329/postgres";
pub const DEFAULT_AWS_ENDPOINT: &str = "http://127.0.0.1:4566";

/// A unique, lowercase name for a test resource (database, bucket, queue).
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A database created for one test, migrated, and dropped when the test ends.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub pool: Pool,
    admin_url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin_url =
            std::env::var("TEST_DATABASE_ADMIN_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
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
        db::migrate(&pool).await.expect("migrations apply to a fresh database");
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

impl Drop for TestDatabase {
    fn drop(&mut self) {
        self.pool.close();
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs outside async; use a private runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok((admin, connection)) = tokio_postgres::connect(&admin_url, NoTls).await {
                    tokio::spawn(connection);
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
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
            "test", "test", None, None, "localstack",
        ))
        .load()
        .await
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
}
