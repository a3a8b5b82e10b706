//! Every version of every input is ingested exactly once, and its outcome
//! and report are never lost to a retry, a race or a late failure: through
//! the real adapters (LocalStack S3, a fresh PostgreSQL database per test),
//! with a fault-injecting store only where S3 cannot fail on cue.

use std::sync::Arc;
use std::time::Duration;

use order_pipeline::error_chain::ErrorChain;
use order_pipeline::ingest::{IngestReport, IngestStatus, Ingestor};
use order_pipeline::postgres::ledger::{Claim, ObjectVersion};
use order_pipeline::postgres::locks::PUBLISH_LOCK;
use order_pipeline::postgres::PgStore;
use order_pipeline::s3_events::{self, Decision};
use order_pipeline::storage::{ObjectRef, ObjectStore, S3Store};
use pipeline_test_support::{FaultyStore, TestBucket, TestDatabase, TestPipeline};

/// The object a bucket notification for `key` names (as last put).
fn notified(bucket: &TestBucket, key: &str) -> ObjectRef {
    match s3_events::notification_from_value(bucket.put_event(key))
        .unwrap()
        .into_decisions()
        .as_slice()
    {
        [Decision::Ingest(object)] => object.clone(),
        other => panic!("not an ingest: {other:?}"),
    }
}

async fn ingest<S: ObjectStore>(ingestor: &Ingestor<S>, object: &ObjectRef) -> IngestReport {
    ingestor
        .ingest(object)
        .await
        .unwrap_or_else(|e| panic!("ingesting {}: {e}", object.key))
}

/// The ledger's identity of what a notification names.
fn version_of(object: &ObjectRef) -> ObjectVersion {
    ObjectVersion {
        bucket: object.bucket.clone(),
        key: object.key.clone(),
        etag: object.etag.clone().unwrap_or_default(),
        version_id: object.version_id.clone().unwrap_or_default(),
    }
}

async fn ledger(db: &TestDatabase) -> Vec<(String, String, Option<String>)> {
    let client = db.pool.get().await.unwrap();
    client
        .query(
            "SELECT version_id, status, report_key FROM ingestions ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect()
}

#[tokio::test]
async fn each_version_of_a_key_is_read_as_its_event_names_it_and_ingested_once() {
    let f = TestPipeline::create().await;
    let key = "incoming/o.csv";
    let v1 = f.bucket.put(key, "order_id,customer_id\n1,10\n").await;
    let first = notified(&f.bucket, key);
    // The second upload lands before the first one's event is handled.
    let v2 = f
        .bucket
        .put(key, "order_id,customer_id\n2,20\n3,30\n")
        .await;
    let second = notified(&f.bucket, key);
    assert_ne!(v1, v2);

    let r1 = ingest(&f.ingestor, &first).await;
    assert_eq!(
        (r1.status, r1.counts.accepted, r1.version_id.as_str()),
        (IngestStatus::Loaded, 1, v1.as_deref().unwrap())
    );
    let r2 = ingest(&f.ingestor, &second).await;
    assert_eq!(
        (r2.status, r2.counts.accepted, r2.version_id.as_str()),
        (IngestStatus::Loaded, 2, v2.as_deref().unwrap())
    );
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 3);
    // Redelivered, each version is done.
    for event in [&first, &second] {
        assert_eq!(
            ingest(&f.ingestor, event).await.status,
            IngestStatus::AlreadyIngested
        );
    }
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 3);

    // One ledger row per version, each linking its own report.
    let rows = ledger(&f.db).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_ne!(rows[0].2, rows[1].2, "each version has its own report");
    for ((version_id, status, report_key), expected) in rows.iter().zip([(&v1, 1), (&v2, 2)]) {
        assert_eq!(
            (version_id, status.as_str()),
            (expected.0.as_ref().unwrap(), "loaded")
        );
        let report: serde_json::Value = serde_json::from_str(
            &f.bucket
                .get_text(report_key.as_deref().unwrap())
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(report["version_id"], version_id.as_str());
        assert_eq!(report["counts"]["accepted"], expected.1);
    }
}

#[tokio::test]
async fn in_an_unversioned_bucket_an_overwritten_version_is_never_mistaken_for_its_successor() {
    let bucket = TestBucket::create_unversioned().await;
    let db = TestDatabase::create().await;
    let ingestor = Ingestor::new(S3Store::new(bucket.client.clone()), db.store());
    let key = "incoming/o.csv";
    bucket.put(key, "order_id,customer_id\n1,10\n").await;
    let first = notified(&bucket, key);
    bucket.put(key, "order_id,customer_id\n2,20\n").await;
    let second = notified(&bucket, key);

    // The first content is gone: its event must not load (or claim) the second's.
    let gone = ingest(&ingestor, &first).await;
    assert_eq!(gone.status, IngestStatus::Superseded);
    assert!(gone.error.unwrap().contains("not versioned"));
    assert_eq!(db.scalar("SELECT count(*) FROM ingestions").await, 0);
    let loaded = ingest(&ingestor, &second).await;
    assert_eq!(
        (loaded.status, loaded.counts.accepted),
        (IngestStatus::Loaded, 1)
    );
    assert_eq!(db.scalar("SELECT min(order_id) FROM orders").await, 2);
}

#[tokio::test]
async fn a_late_failure_never_overwrites_a_concurrent_success() {
    let f = Arc::new(TestPipeline::create().await);
    let key = "incoming/o.csv";
    f.bucket
        .put(key, "order_id,customer_id\n1,10\n2,20\n")
        .await;
    let object = notified(&f.bucket, key);
    let version = version_of(&object);

    // Delivery A claims the version; delivery B waits on A's ledger row.
    let Claim::Claimed(attempt_a) = f.db.store().begin_ingestion(&version).await.unwrap() else {
        panic!("the version is new");
    };
    let delivery_b = tokio::spawn({
        let (f, object) = (f.clone(), object.clone());
        async move { ingest(&f.ingestor, &object).await }
    });
    wait_until_blocked_on_a_lock(&f.db).await;
    // A fails and rolls back; B loads and commits; only then does A record
    // its failure.
    drop(attempt_a);
    let b = delivery_b.await.unwrap();
    assert_eq!(b.status, IngestStatus::Loaded);
    let recorded =
        f.db.store()
            .record_failure(&version, "connection reset by peer")
            .await
            .unwrap();
    assert_eq!(recorded, None, "a finished version is not marked failed");

    let rows = ledger(&f.db).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, "loaded");
    assert_eq!(rows[0].2, b.report_key, "the report link stays");
    // A retry of A finds the version done: nothing is loaded twice.
    let retry = ingest(&f.ingestor, &object).await;
    assert_eq!(retry.status, IngestStatus::AlreadyIngested);
    assert_eq!(f.stat("rejected_rows").await, 0);
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 2);
}

/// Waits until some session of the test database waits for a lock.
async fn wait_until_blocked_on_a_lock(db: &TestDatabase) {
    for _ in 0..200 {
        let waiting = db
            .scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await;
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no session ever waited for the lock");
}

#[tokio::test]
async fn a_rejected_file_is_final_only_with_its_report() {
    let bucket = TestBucket::create().await;
    let db = TestDatabase::create().await;
    let store = FaultyStore::new(S3Store::new(bucket.client.clone())).failing_writes(1, "reports/");
    let ingestor = Ingestor::new(store, db.store());
    bucket.put("incoming/x.csv", "a,b\n1,2\n").await;
    let object = notified(&bucket, "incoming/x.csv");

    // The report cannot be written: the delivery fails and will be retried;
    // the ledger does not claim a final outcome.
    let error = ingestor.ingest(&object).await.unwrap_err();
    let error = ErrorChain(&error).to_string();
    assert!(error.contains("injected"), "{error}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM ingestions WHERE status = 'rejected'")
            .await,
        0
    );

    let retried = ingest(&ingestor, &object).await;
    assert_eq!(retried.status, IngestStatus::Rejected);
    let report_key = retried.report_key.clone().unwrap();
    let stored = bucket
        .get_text(&report_key)
        .await
        .expect("the report exists");
    assert!(stored.contains("unrecognised header"), "{stored}");
    let rows = ledger(&db).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_deref()),
        ("rejected", Some(report_key.as_str()))
    );
    assert_eq!(
        ingest(&ingestor, &object).await.status,
        IngestStatus::AlreadyIngested
    );
}

#[tokio::test]
async fn a_cancelled_publish_never_returns_its_connection_mid_transaction() {
    let db = TestDatabase::create().await;
    let store = PgStore::new(db.pool.clone());
    let holder = store.begin_publish("somewhere").await.unwrap();
    // A second publisher waits for the lock and is cancelled meanwhile (a
    // request timeout, a client gone).
    let cancelled =
        tokio::time::timeout(Duration::from_millis(300), store.begin_publish("somewhere"));
    assert!(cancelled.await.is_err(), "the lock is held");
    drop(holder);

    // The lock must be free now: had the cancelled connection gone back to
    // the pool, it would take the lock once released and sit on it, idle
    // in its transaction, blocking every publish after it.
    let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("SET lock_timeout = '5s'; BEGIN")
        .await
        .unwrap();
    client
        .execute("SELECT pg_advisory_xact_lock($1)", &[&PUBLISH_LOCK])
        .await
        .expect("the publish lock is free once its holder is gone");
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND state = 'idle in transaction'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_sale_cancelled_while_it_waits_for_a_load_leaves_no_transaction_behind() {
    let db = TestDatabase::create().await;
    // One connection, so the next request gets the cancelled one's.
    let pool =
        order_pipeline::postgres::pool::connect_pool(&order_pipeline::config::DatabaseSettings {
            url: db.url.clone(),
            pool_size: 1,
            connect_timeout: Duration::from_secs(10),
        })
        .unwrap();
    let store = PgStore::new(pool.clone());
    // A load merging holds the merge lock; the sale waits for it and its
    // client gives up.
    let (load, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    load.batch_execute("BEGIN").await.unwrap();
    load.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&order_pipeline::postgres::locks::MERGE_LOCK],
    )
    .await
    .unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(300), store.sell(10, 1, Some("k1")));
    assert!(
        cancelled.await.is_err(),
        "the sale waits for the merge lock"
    );
    // While the load still merges, the next request is not stuck behind
    // the abandoned lock wait (5 s is a hang guard, not a speed bound).
    let next = tokio::time::timeout(Duration::from_secs(5), async {
        let client = pool.get().await.unwrap();
        client.simple_query("SELECT 1").await.unwrap();
    });
    assert!(
        next.await.is_ok(),
        "the next request waited behind the cancelled sale"
    );
    load.batch_execute("COMMIT").await.unwrap();

    // The next request runs in a transaction of its own.
    let client = pool.get().await.unwrap();
    // SAVEPOINT is refused outside a transaction block.
    let in_transaction = client.batch_execute("SAVEPOINT probe").await.is_ok();
    assert!(
        !in_transaction,
        "the connection came back inside the cancelled sale's transaction"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM sales").await, 0);
}
