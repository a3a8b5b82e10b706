//! A database of a test's own: created, migrated, and dropped when the test
//! ends; login users of the function roles.

use deadpool_postgres::Pool;
use tokio_postgres::NoTls;

use order_pipeline::config::DatabaseSettings;
use order_pipeline::postgres::roles::{self, DatabaseRole};
use order_pipeline::postgres::{self, PgStore};

/// A maintenance database URL on the private test cluster `make test` starts.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:54329/postgres";

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
        postgres::migrations::migrate(&db.pool)
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
        let pool = postgres::pool::connect_pool(&DatabaseSettings {
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
        postgres::pool::connect_pool(&DatabaseSettings {
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
