//! The migrate function against a real, empty PostgreSQL database.

use migrate::FunctionUser;
use order_pipeline::config::DatabaseSettings;
use order_pipeline::postgres::roles::DatabaseRole;
use order_pipeline::postgres::secret::Login;
use pipeline_test_support::{unique_name, TestDatabase};

fn settings(db: &TestDatabase, pool_size: usize) -> DatabaseSettings {
    DatabaseSettings {
        url: db.url.clone(),
        pool_size,
        connect_timeout: std::time::Duration::from_secs(10),
    }
}

#[tokio::test]
async fn concurrent_invocations_apply_each_migration_once() {
    let db = TestDatabase::create_empty().await;
    // Without the advisory lock, runs racing on an empty schema fail on the
    // tables and history rows the other run creates at the same time.
    let pools: Vec<_> = (0..4)
        .map(|_| migrate::pool(&settings(&db, 1)).expect("pool"))
        .collect();
    let answers =
        futures_util::future::join_all(pools.iter().map(|pool| migrate::handle(pool, &[]))).await;
    let applied: Vec<u64> = answers
        .into_iter()
        .map(|answer| {
            answer.expect("every run succeeds")["applied"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let migration_files =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
            .expect("migrations/")
            .count() as u64;
    assert_eq!(applied.iter().sum::<u64>(), migration_files, "{applied:?}");
    assert_eq!(applied.iter().filter(|&&n| n > 0).count(), 1, "{applied:?}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM refinery_schema_history")
            .await,
        migration_files as i64
    );
}

#[tokio::test]
async fn a_current_schema_is_left_alone() {
    let db = TestDatabase::create().await;
    let pool = migrate::pool(&settings(&db, 2)).expect("pool");
    let answer = migrate::handle(&pool, &[]).await.expect("migrate");
    assert_eq!(answer["applied"], 0);
}

/// The stored password verifier of `user` (SCRAM-SHA-256, never clear text).
async fn verifier(db: &TestDatabase, user: &str) -> String {
    let client = db.pool.get().await.unwrap();
    client
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&user],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn migrating_creates_each_functions_user_with_its_secrets_password() {
    let db = TestDatabase::create_empty().await;
    let pool = migrate::pool(&settings(&db, 2)).expect("pool");
    let name = unique_name("migrate_user").replace('-', "_");
    let user = |password: &str| FunctionUser {
        role: DatabaseRole::Orders,
        login: Login {
            username: name.clone(),
            password: password.to_owned(),
        },
    };
    let answer = migrate::handle(&pool, &[user("first-password")])
        .await
        .expect("migrate and create the user");
    assert_eq!(answer["users"], serde_json::json!([name]));
    let first = verifier(&db, &name).await;
    assert!(first.starts_with("SCRAM-SHA-256$"), "{first}");
    let client = db.pool.get().await.unwrap();
    let member: bool = client
        .query_one(
            "SELECT pg_has_role($1, 'order_pipeline_orders', 'USAGE')",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(member, "{name} has the orders role's privileges");
    let can_login: bool = client
        .query_one(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(can_login);

    // A rotated secret: the next run gives the user its new password.
    let answer = migrate::handle(&pool, &[user("second-password")])
        .await
        .expect("update the user");
    assert_eq!(answer["applied"], 0);
    assert_ne!(verifier(&db, &name).await, first);
    // The user may use the data but not change the schema.
    client
        .batch_execute(&format!(
            "SET ROLE {name}; SELECT count(*) FROM orders; RESET ROLE"
        ))
        .await
        .expect("reads as the orders role");
    let denied = client
        .batch_execute(&format!("SET ROLE {name}; DROP TABLE orders"))
        .await
        .expect_err("the orders role cannot drop a table");
    assert_eq!(
        denied.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    client
        .batch_execute(&format!("RESET ROLE; DROP ROLE {name}"))
        .await
        .expect("drop the test user");
}
