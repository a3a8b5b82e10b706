//! The migrate function against a real, empty PostgreSQL database.

use order_pipeline::config::DatabaseSettings;
use order_pipeline::testing::TestDatabase;

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
    let answers = futures_util::future::join_all(pools.iter().map(migrate::handle)).await;
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
    let answer = migrate::handle(&pool).await.expect("migrate");
    assert_eq!(answer["applied"], 0);
}
