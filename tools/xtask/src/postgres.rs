//! Plain SQL on the private cluster: databases made and dropped, and the
//! statements the tasks run themselves (the floor, statistics).

use anyhow::{Context, Result};
use tokio_postgres::{Client, NoTls};

/// A connection to `url`, driven in the background.
pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let server = url.rsplit_once('/').map_or(url, |(server, _)| server);
    format!("{server}/{database}")
}

pub async fn create_database(admin: &Client, name: &str) -> Result<()> {
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .with_context(|| format!("creating database {name}"))
}

/// Drops `name` with whoever is still connected to it.
pub async fn drop_database(admin: &Client, name: &str) -> Result<()> {
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
        .with_context(|| format!("dropping database {name}"))
}

/// The server's version number, e.g. `15.14`.
pub async fn server_version(client: &Client) -> Result<String> {
    let row = client.query_one("SHOW server_version", &[]).await?;
    let version: String = row.get(0);
    Ok(version
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// Applies migrations/ to the database at `url`, as `pipeline-local migrate`.
pub async fn migrate(url: &str) -> Result<()> {
    let settings = order_pipeline::config::DatabaseSettings::with_url(url.to_owned())?;
    let pool = order_pipeline::postgres::pool::connect_pool(&settings)?;
    order_pipeline::postgres::migrations::migrate_exclusively(&pool)
        .await
        .with_context(|| format!("migrating {url}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_database_on_the_same_server() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:54329/postgres", "bench_1"),
            "postgres://postgres@127.0.0.1:54329/bench_1"
        );
    }
}
