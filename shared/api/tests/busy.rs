//! A request that gives up on the database says why: a lock a load holds,
//! or a statement that ran out of time. Both are a 503 with Retry-After
//! and the busy problem type; only the first blames a load.

use order_pipeline::postgres::DbError;
use pipeline_api::http::ApiError;
use pipeline_test_support::TestDatabase;

fn answer(error: tokio_postgres::Error) -> ApiError {
    ApiError::from(DbError::from(error))
}

#[tokio::test]
async fn a_lock_wait_blames_a_load_and_a_slow_statement_does_not() {
    let db = TestDatabase::create().await;
    let holder = db.pool.get().await.unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let waiter = db.pool.get().await.unwrap();
    let locked = waiter
        .batch_execute("SET lock_timeout = '20ms'; SELECT count(*) FROM orders")
        .await
        .unwrap_err();
    let locked = answer(locked);
    assert_eq!(locked.status, 503);
    assert!(locked.retry_after.is_some());
    assert!(
        locked
            .detail
            .starts_with("the data is being loaded right now"),
        "{}",
        locked.detail
    );
    holder.batch_execute("ROLLBACK").await.unwrap();

    let slow = waiter
        .batch_execute("SET statement_timeout = '20ms'; SELECT pg_sleep(2)")
        .await
        .unwrap_err();
    let slow = answer(slow);
    assert_eq!(slow.status, 503);
    assert_eq!(slow.problem_type, locked.problem_type);
    assert!(slow.retry_after.is_some());
    assert!(
        slow.detail
            .starts_with("the database took too long to answer"),
        "{}",
        slow.detail
    );
}
