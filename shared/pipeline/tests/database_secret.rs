//! Database settings from an RDS-format secret, and TLS chosen by sslmode,
//! against the real local PostgreSQL. (Fetching the secret from Secrets
//! Manager itself is not exercised here: LocalStack runs S3 and SQS only.)

use order_pipeline::config::DatabaseSettings;
use order_pipeline::postgres;
use order_pipeline::postgres::secret::{url_from_secret, SecretOverrides, SslMode};
use pipeline_test_support::TestDatabase;

fn overrides(ssl_mode: SslMode) -> SecretOverrides {
    SecretOverrides {
        host: None,
        dbname: None,
        ssl_mode,
    }
}

fn parsed(url: &str) -> tokio_postgres::Config {
    url.parse()
        .unwrap_or_else(|e| panic!("{url} does not parse: {e}"))
}

#[test]
fn every_field_survives_the_url_whatever_its_characters() {
    let password = r#"p@ss:w/rd?#%&= "quoted" ü"#;
    let secret = serde_json::json!({
        "engine": "postgres",
        "username": "pipeline user",
        "password": password,
        "host": "db.cluster-abc.eu-west-1.rds.amazonaws.com",
        "port": 6432,
        "dbname": "orders/prod",
    });
    let url = url_from_secret(&secret.to_string(), &overrides(SslMode::Require)).unwrap();
    let config = parsed(&url);
    assert_eq!(config.get_user(), Some("pipeline user"));
    assert_eq!(config.get_password(), Some(password.as_bytes()));
    assert_eq!(config.get_ports(), &[6432]);
    assert_eq!(config.get_dbname(), Some("orders/prod"));
    assert_eq!(
        config.get_ssl_mode(),
        tokio_postgres::config::SslMode::Require
    );
    assert!(matches!(
        &config.get_hosts()[0],
        tokio_postgres::config::Host::Tcp(h) if h == "db.cluster-abc.eu-west-1.rds.amazonaws.com"
    ));
}

#[test]
fn the_environment_fills_in_and_overrides_the_secret() {
    // An RDS-managed master secret holds only the user and password.
    let minimal = r#"{"username":"admin","password":"pw","port":"5433"}"#;
    let mut with_host = overrides(SslMode::Disable);
    assert!(url_from_secret(minimal, &with_host)
        .unwrap_err()
        .contains("DATABASE_HOST"));
    with_host.host = Some("proxy.example.internal".into());
    with_host.dbname = Some("orders".into());
    let config = parsed(&url_from_secret(minimal, &with_host).unwrap());
    assert!(
        matches!(&config.get_hosts()[0], tokio_postgres::config::Host::Tcp(h) if h == "proxy.example.internal")
    );
    assert_eq!(config.get_ports(), &[5433]);
    assert_eq!(config.get_dbname(), Some("orders"));

    // DATABASE_HOST (e.g. RDS Proxy) wins over the secret's own host.
    let full = r#"{"username":"a","password":"b","host":"instance.internal","dbname":"x"}"#;
    let config = parsed(&url_from_secret(full, &with_host).unwrap());
    assert!(
        matches!(&config.get_hosts()[0], tokio_postgres::config::Host::Tcp(h) if h == "proxy.example.internal")
    );
    assert_eq!(config.get_ports(), &[5432]);
}

#[test]
fn a_malformed_secret_is_reported_without_its_content() {
    let error = url_from_secret(
        r#"{"user":"a","password":"hunter2"}"#,
        &overrides(SslMode::Require),
    )
    .unwrap_err();
    assert!(error.contains("RDS-format"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
    let error = url_from_secret(
        r#"{"username":"a","password":"b","host":"h","port":"x"}"#,
        &overrides(SslMode::Require),
    )
    .unwrap_err();
    assert!(error.contains("port"), "{error}");
    assert!(url_from_secret("not json", &overrides(SslMode::Require)).is_err());
}

/// The secret of the test database on the local server (no TLS there).
fn local_secret(db: &TestDatabase) -> String {
    let admin = parsed(&db.url);
    let port = admin.get_ports().first().copied().unwrap_or(5432);
    serde_json::json!({
        "username": admin.get_user().unwrap_or("postgres"),
        "password": "",
        "host": "127.0.0.1",
        "port": port,
        "dbname": db.name,
    })
    .to_string()
}

fn pool_for(url: String) -> deadpool_postgres::Pool {
    postgres::pool::connect_pool(&DatabaseSettings {
        url,
        pool_size: 1,
        connect_timeout: std::time::Duration::from_secs(5),
    })
    .expect("pool")
}

#[tokio::test]
async fn settings_from_a_secret_reach_the_database() {
    let db = TestDatabase::create().await;
    let url = url_from_secret(&local_secret(&db), &overrides(SslMode::Disable)).unwrap();
    let client = pool_for(url)
        .get()
        .await
        .expect("connects with the secret's settings");
    let row = client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), db.name);
}

#[tokio::test]
async fn sslmode_require_insists_on_tls() {
    // The local server has no TLS: with sslmode=require the pool must ask for
    // it (through rustls) and refuse the plain connection it is offered.
    let db = TestDatabase::create().await;
    let url = url_from_secret(&local_secret(&db), &overrides(SslMode::Require)).unwrap();
    let error = pool_for(url)
        .get()
        .await
        .expect_err("a server without TLS is refused");
    let error = format!("{error:?}");
    assert!(error.contains("server does not support TLS"), "{error}");
}
