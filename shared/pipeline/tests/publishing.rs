//! Publishing processed_orders.csv while files keep arriving: a load that
//! finds a publish in flight leaves its commit to that publisher, which
//! repeats until the file is current, so a burst costs a few publishes and
//! no load waits for another's upload. Real PostgreSQL, a bucket in memory.

// Shared with the rule tests, which use all of it.
#[allow(dead_code)]
mod rules_support;

use std::time::Duration;

use order_pipeline::config::PROCESSED_ORDERS_KEY;
use order_pipeline::ingest::{IngestStatus, Ingestor};
use order_pipeline::postgres::locks;
use order_pipeline::postgres::roles::DatabaseRole;
use order_pipeline::processed::segments::SegmentLayout;
use order_pipeline::storage::memory::MemoryStore;
use order_pipeline::storage::ObjectRef;
use pipeline_test_support::{FaultyStore, TestDatabase, TestPipeline, WriteGate};
use rules_support::RulesFixture;

#[tokio::test]
async fn loads_during_a_publish_leave_it_to_the_publisher_which_repeats_until_current() {
    let f = TestPipeline::in_memory().await;
    let gate = WriteGate::new();
    // Every ingestor here holds its uploads of processed_orders.csv at the gate.
    let gated = || {
        Ingestor::new(
            FaultyStore::new(f.bucket.store.clone())
                .holding_writes(PROCESSED_ORDERS_KEY, gate.clone()),
            f.db.store(),
        )
    };
    let ingestor = gated();
    let ingest = |key: &'static str, body: &'static str| {
        let (f, ingestor) = (&f, &ingestor);
        async move {
            f.bucket.put(key, body).await;
            ingestor
                .ingest(&ObjectRef::new(&f.bucket.name, key))
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"))
        }
    };
    gate.let_through(1);
    ingest("incoming/o.csv", "order_id,customer_id\n1,10\n2,20\n3,30\n").await;
    gate.arrival().await; // its publish, gone through already
    assert_eq!(gate.writes(), 1);

    // The first barcodes file's publisher stops at the gate, in the middle
    // of its upload, holding the publish lock.
    f.bucket
        .put("incoming/b1.csv", "barcode,order_id\nA,1\n")
        .await;
    let publisher = tokio::spawn({
        let (ingestor, first) = (gated(), ObjectRef::new(&f.bucket.name, "incoming/b1.csv"));
        async move {
            ingestor
                .ingest(&first)
                .await
                .expect("the first barcodes file")
        }
    });
    tokio::time::timeout(Duration::from_secs(30), gate.arrival())
        .await
        .expect("the publisher reaches its upload");

    // Two more files load and commit meanwhile: neither waits for the
    // upload, and neither publishes.
    for (key, body) in [
        ("incoming/b2.csv", "barcode,order_id\nB,2\n"),
        ("incoming/b3.csv", "barcode,order_id\nC,3\n"),
    ] {
        let report = tokio::time::timeout(Duration::from_secs(30), ingest(key, body))
            .await
            .unwrap_or_else(|_| panic!("{key} waited for the publish in flight"));
        assert_eq!(report.status, IngestStatus::Loaded, "{key}");
        assert_eq!(report.processed_orders_written, None, "{key}");
    }
    assert_eq!(
        gate.writes(),
        1,
        "only the orders file's publish went through"
    );

    // Let the publisher go: its first upload shows its own snapshot, then it
    // sees the file behind and publishes once more, with both files.
    gate.let_through(2);
    let report = publisher.await.unwrap();
    assert_eq!(report.processed_orders_written, Some(3));
    assert_eq!(gate.writes(), 3);
    assert_eq!(
        f.bucket.get_text(PROCESSED_ORDERS_KEY).await.unwrap(),
        "customer_id,order_id,barcodes\n10,1,[A]\n20,2,[B]\n30,3,[C]\n"
    );
    assert_eq!(
        f.db.scalar("SELECT publishes FROM published_outputs").await,
        3
    );
}

/// Each commit that changes processed_orders.csv records whose lines it
/// changed, with its output version: the segments a publisher rewrites. A
/// first barcodes load records the whole file (it writes the file itself).
/// A publish forgets what it published. The test holds the publish lock, so
/// the loads leave their publishing to it.
#[tokio::test]
async fn a_commit_records_the_orders_whose_lines_it_changed() {
    let f = rules_support::fixture().await;
    let changes = || async {
        let client = f.db.pool.get().await.unwrap();
        client
            .query(
                "SELECT output_version, order_id FROM export_changes ORDER BY 1, 2",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get::<_, i64>(0), row.get::<_, Option<i64>>(1)))
            .collect::<Vec<_>>()
    };
    let version = || f.stat("output_version");
    let publisher = f.ingestor.db().begin_publish(&f.bucket.name).await.unwrap();
    f.ingest(
        "incoming/o1.csv",
        "order_id,customer_id\n1,10\n2,20\n3,30\n",
    )
    .await;
    assert_eq!(changes().await, [], "orders without barcodes");
    f.ingest("incoming/b1.csv", "barcode,order_id\nA,1\nB,9\nC,\n")
        .await;
    let first = version().await;
    assert_eq!(changes().await, [(first, None)], "a first barcodes load");

    f.ingest("incoming/b2.csv", "barcode,order_id\nD,2\nC,3\nA,2\n")
        .await;
    let sold = version().await;
    assert_eq!(
        changes().await,
        [(first, None), (sold, Some(2)), (sold, Some(3))]
    );

    f.ingest("incoming/o2.csv", "order_id,customer_id\n9,90\n4,40\n")
        .await;
    let arrived = version().await;
    assert_eq!(
        changes().await,
        [
            (first, None),
            (sold, Some(2)),
            (sold, Some(3)),
            (arrived, Some(9))
        ],
        "order 9's barcode was waiting; order 4 has none"
    );

    drop(publisher);
    f.ingestor
        .publish_processed_orders(&f.bucket.name)
        .await
        .unwrap();
    assert_eq!(changes().await, [], "published, so forgotten");
}

/// A publish rewrites the segments holding the orders that changed and
/// leaves every other segment as it was: a late barcode for an order in
/// the middle rewrites its segment; new orders rewrite the last.
#[tokio::test]
async fn a_publish_rewrites_only_the_segments_whose_orders_changed() {
    let f = rules_support::fixture().await;
    // Segments of about three lines, as small as the store allows.
    let ingestor = Ingestor::new(f.bucket.store.clone().with_min_part_size(20), f.db.store())
        .with_segment_layout(SegmentLayout { target_bytes: 40 });
    let ingest = |key: &'static str, body: String| {
        let ingestor = &ingestor;
        let f = &f;
        async move {
            f.bucket.put(key, body).await;
            ingestor
                .ingest(&ObjectRef::new(&f.bucket.name, key))
                .await
                .unwrap()
        }
    };
    let segments = || async {
        let client = f.db.pool.get().await.unwrap();
        client
            .query(
                "SELECT first_order_id, object_key FROM export_segments ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get::<_, i64>(0), row.get::<_, String>(1)))
            .collect::<Vec<_>>()
    };
    let orders: String = (1..=30).map(|id| format!("{id},5\n")).collect();
    ingest("incoming/o1.csv", format!("order_id,customer_id\n{orders}")).await;
    let barcodes: String = (1..=30).map(|id| format!("C{id},{id}\n")).collect();
    ingest(
        "incoming/b1.csv",
        format!("barcode,order_id\n{barcodes}U1,\n"),
    )
    .await;
    let before = segments().await;
    assert!(before.len() >= 8, "{before:?}");

    ingest("incoming/b2.csv", "barcode,order_id\nU1,15\n".into()).await;
    let after = segments().await;
    let holds_15 = before.iter().rposition(|(first, _)| *first <= 15).unwrap();
    let unchanged = |of: &[(i64, String)]| {
        of.iter()
            .filter(|s| s.0 != before[holds_15].0)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        unchanged(&after),
        unchanged(&before),
        "only order 15's segment"
    );
    assert_ne!(
        after[holds_15], before[holds_15],
        "order 15's segment is new"
    );
    assert!(f.processed().await.contains("5,15,\"[C15, U1]\"\n"));

    ingest(
        "incoming/o2.csv",
        "order_id,customer_id\n31,6\n32,6\n".into(),
    )
    .await;
    ingest(
        "incoming/b3.csv",
        "barcode,order_id\nC31,31\nC32,32\n".into(),
    )
    .await;
    let tail = segments().await;
    let last = after.len() - 1;
    assert_eq!(tail[..last], after[..last], "only the last segment");
    assert_ne!(tail[last..], after[last..]);
    assert!(f.processed().await.ends_with("6,31,[C31]\n6,32,[C32]\n"));
}

/// Two databases publishing into the same bucket (two environments, or a
/// benchmark's runs) never take each other's segments: each database's
/// file, once brought up to date, is its own data.
#[tokio::test]
async fn databases_sharing_a_bucket_keep_their_own_segments() {
    let store = MemoryStore::versioned().with_min_part_size(20);
    let bucket = "shared-bucket";
    let mut pipelines = Vec::new();
    for _ in 0..2 {
        let db = TestDatabase::create().await;
        let ingestor = Ingestor::new(store.clone(), db.store())
            .with_segment_layout(SegmentLayout { target_bytes: 40 });
        pipelines.push((db, ingestor));
    }
    for (n, (_, ingestor)) in pipelines.iter().enumerate() {
        let customer = 10 + n;
        let orders: String = (1..=12).map(|id| format!("{id},{customer}\n")).collect();
        put_and_ingest(
            ingestor,
            &store,
            bucket,
            "incoming/o.csv",
            format!("order_id,customer_id\n{orders}"),
        )
        .await;
        let barcodes: String = (1..=12).map(|id| format!("N{n}C{id},{id}\n")).collect();
        put_and_ingest(
            ingestor,
            &store,
            bucket,
            "incoming/b.csv",
            format!("barcode,order_id\n{barcodes}"),
        )
        .await;
    }
    // The first database's file was replaced by the second's; a late
    // barcode brings it up to date again, from its own segments.
    let (_, first) = &pipelines[0];
    put_and_ingest(
        first,
        &store,
        bucket,
        "incoming/late.csv",
        "barcode,order_id\nLATE,6\n".into(),
    )
    .await;
    let published = String::from_utf8(store.get(bucket, PROCESSED_ORDERS_KEY).unwrap()).unwrap();
    let lines: String = (1..=12)
        .map(|id| match id {
            6 => "10,6,\"[N0C6, LATE]\"\n".to_owned(),
            _ => format!("10,{id},[N0C{id}]\n"),
        })
        .collect();
    assert_eq!(published, format!("customer_id,order_id,barcodes\n{lines}"));
}

async fn put_and_ingest(
    ingestor: &Ingestor<MemoryStore>,
    store: &MemoryStore,
    bucket: &str,
    key: &str,
    body: String,
) {
    store.insert(bucket, key, body.into_bytes());
    ingestor.ingest(&ObjectRef::new(bucket, key)).await.unwrap();
}

/// A publisher that finds a load merging (holding the merge lock) waits
/// for its commit before it takes its snapshot, so the file it writes shows
/// that load too; and waits no longer than it was told. As the ingest role,
/// which reads the locks from pg_locks.
#[tokio::test]
async fn a_publisher_waits_for_a_merge_in_flight_before_its_snapshot() {
    let db = TestDatabase::create().await;
    let publisher = db.store_as(DatabaseRole::Ingest).await;
    let version_now = || db.scalar("SELECT output_version FROM pipeline_stats");
    let before = version_now().await;

    // A merge in flight: the merge lock and a change of the output, not
    // committed yet.
    let mut merging = db.pool.get().await.unwrap();
    let merge = merging.transaction().await.unwrap();
    merge
        .execute("SELECT pg_advisory_xact_lock($1)", &[&locks::MERGE_LOCK])
        .await
        .unwrap();
    merge
        .execute(
            "UPDATE pipeline_stats SET output_version = output_version + 1",
            &[],
        )
        .await
        .unwrap();

    // Told to wait 200 ms at most, it begins with the data as it was.
    let session = publisher
        .try_begin_publish("bucket", Duration::from_millis(200))
        .await
        .unwrap()
        .expect("the publish lock is free");
    assert_eq!(session.data_version(), before);
    session.release().await.unwrap();

    // Told to wait long, it is still waiting while the merge runs ...
    let waiting = tokio::spawn({
        let publisher = publisher.clone();
        async move {
            publisher
                .try_begin_publish("bucket", Duration::from_secs(60))
                .await
                .unwrap()
                .expect("the publish lock is free")
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "it began during the merge");
    // ... and begins once the merge commits, with the merge in its snapshot.
    merge.commit().await.unwrap();
    let session = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("it began soon after the commit")
        .unwrap();
    assert_eq!(session.data_version(), before + 1);
    session.release().await.unwrap();
}
