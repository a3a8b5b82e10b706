//! Deliveries, reports and publishing, end to end through the real
//! ingestor: redeliveries and concurrent deliveries change nothing, every
//! ingest leaves its report and ledger row, and processed_orders.csv shows
//! the committed data (objects in memory, a fresh PostgreSQL database per
//! test). The row rules are in ingest_rules.rs.

mod rules_support;

use order_pipeline::config::PROCESSED_ORDERS_KEY;
use order_pipeline::domain::outcome::Severity;
use order_pipeline::ingest::IngestStatus;
use pipeline_test_support::TestPipeline;
use rules_support::{fixture, problem_lines, RulesFixture};

#[tokio::test]
async fn redelivery_of_the_same_object_changes_nothing() {
    let f = fixture().await;
    let first = f
        .ingest("incoming/o.csv", "order_id,customer_id\n1,10\n")
        .await;
    let version_before = f.stat("data_version").await;
    let again = f.ingest_existing("incoming/o.csv").await;
    assert_eq!(again.status, IngestStatus::AlreadyIngested);
    assert_eq!(again.ingestion_id, first.ingestion_id);
    assert!(again.error.unwrap().contains("already ingested"));
    assert_eq!(f.scalar("SELECT count(*) FROM ingestions").await, 1);
    assert_eq!(f.stat("data_version").await, version_before);

    // New content under the same key is a new version: ingested again.
    let changed = f
        .ingest("incoming/o.csv", "order_id,customer_id\n1,10\n2,20\n")
        .await;
    assert_eq!(changed.status, IngestStatus::Loaded);
    assert_eq!(changed.counts.accepted, 1);
    assert_eq!(f.scalar("SELECT count(*) FROM ingestions").await, 2);
}

#[tokio::test]
async fn the_report_and_ledger_record_every_ingest() {
    let f = fixture().await;
    let report = f
        .ingest(
            "incoming/o.csv",
            "order_id,customer_id,channel\n1,10,web\nx,10,web\n",
        )
        .await;
    assert_eq!(report.extra_columns, ["channel"]);
    let stored: serde_json::Value = serde_json::from_str(
        &f.bucket
            .get_text(report.report_key.as_deref().unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stored["status"], "loaded");
    assert_eq!(stored["counts"]["accepted"], 1);
    assert_eq!(stored["counts"]["rejected"], 1);
    assert_eq!(stored["extra_columns"][0], "channel");
    // Line 2 is stored without barcodes (yet), a figure of its own; line 3
    // is rejected.
    assert_eq!(stored["counts"]["orders_without_barcodes"], 1);
    assert_eq!(
        stored["first_orders_without_barcodes"],
        serde_json::json!([{"line": 2, "order_id": 1}])
    );
    assert_eq!(stored["problems"][0]["line"], 3);
    assert_eq!(stored["problems"][0]["severity"], "rejected");
    // Reports are kept per version of the input.
    let version = f.text("SELECT version_id FROM ingestions").await.unwrap();
    assert!(!version.is_empty(), "the test bucket is versioned");
    assert_eq!(
        stored["rejects_key"],
        format!("reports/incoming/o.csv/{version}.rejected.csv")
    );
    let client = f.db.pool.get().await.unwrap();
    let ledger = client
        .query_one(
            "SELECT status, kind, rows_read, accepted, rejected, report_key, rejects_key, etag <> '', duration_ms >= 0
             FROM ingestions",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(ledger.get::<_, String>(0), "loaded");
    assert_eq!(ledger.get::<_, String>(1), "orders");
    assert_eq!(
        (
            ledger.get::<_, i64>(2),
            ledger.get::<_, i64>(3),
            ledger.get::<_, i64>(4)
        ),
        (2, 1, 1)
    );
    assert_eq!(
        ledger.get::<_, String>(5),
        format!("reports/incoming/o.csv/{version}.json")
    );
    assert!(ledger.get::<_, bool>(7) && ledger.get::<_, bool>(8));
    assert_eq!(
        f.text("SELECT i.key || ':' || o.source_line FROM orders o JOIN ingestions i ON i.id = o.ingestion_id").await.unwrap(),
        "incoming/o.csv:2"
    );
}

#[tokio::test]
async fn two_files_ingested_at_once_give_the_serial_result() {
    let f = fixture().await;
    f.ingest("incoming/o.csv", "order_id,customer_id\n1,10\n2,20\n")
        .await;
    // Both files claim the same barcodes for different orders; whichever
    // commits first wins all of them, the other is rejected for all.
    let a: String = std::iter::once("barcode,order_id".to_owned())
        .chain((0..5000).map(|i| format!("S{i:05},1")))
        .collect::<Vec<_>>()
        .join("\n");
    let b = a.replace(",1", ",2");
    f.bucket.put("incoming/a.csv", a).await;
    f.bucket.put("incoming/b.csv", b).await;
    let (ra, rb) = tokio::join!(
        f.ingest_existing("incoming/a.csv"),
        f.ingest_existing("incoming/b.csv")
    );
    assert_eq!(ra.counts.accepted + rb.counts.accepted, 5000);
    assert!(ra.counts.accepted == 5000 || rb.counts.accepted == 5000);
    assert_eq!(f.scalar("SELECT count(*) FROM barcodes").await, 5000);
    assert_eq!(
        f.scalar("SELECT count(DISTINCT order_id) FROM barcodes")
            .await,
        1
    );
    let processed = f.processed().await;
    assert_eq!(
        processed.lines().count(),
        2,
        "one order holds every barcode"
    );
}

#[tokio::test]
async fn concurrent_deliveries_of_one_object_load_it_once() {
    let f = fixture().await;
    f.bucket
        .put("incoming/o.csv", "order_id,customer_id\n1,10\n2,20\n")
        .await;
    let (x, y) = tokio::join!(
        f.ingest_existing("incoming/o.csv"),
        f.ingest_existing("incoming/o.csv")
    );
    let mut statuses = [x.status, y.status];
    statuses.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        statuses,
        [IngestStatus::AlreadyIngested, IngestStatus::Loaded]
    );
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 2);
}

/// A first load copies rows straight into the empty tables and checks only
/// the rows a filter flags as possible repeats. With a filter so small that
/// it flags nearly every row (and more rows than the loader holds back at
/// once), the result must be exactly the same as with the real one. So must
/// processed_orders.csv when the barcodes, out of order_id order, are sorted
/// in runs of a few rows each.
#[tokio::test]
async fn first_loads_give_the_same_result_whatever_the_repeat_filter_flags() {
    let mut orders = String::from("order_id,customer_id\n");
    let mut barcodes = String::from("barcode,order_id\n");
    for i in 1..=20_000u64 {
        orders.push_str(&format!("{i},{}\n", i % 97 + 1));
        if i % 1000 == 0 {
            // A same-customer repeat, a conflict, and a bad row.
            orders.push_str(&format!("{i},{}\n{i},999999\nx{i},1\n", i % 97 + 1));
        }
        // Out of order_id order: each barcode goes to an order far from
        // the previous one's.
        let order_id = i * 7919 % 20_000 + 1;
        barcodes.push_str(&format!("B{i:07},{order_id}\nU{i:07},\n"));
        if i % 500 == 0 {
            barcodes.push_str(&format!("B{:07},{}\nbad barcode!,{i}\n", i / 2, i));
        }
    }
    let mut outcomes = Vec::new();
    for (filter_bytes, sort_budget) in [
        (order_pipeline::seen::DEFAULT_FILTER_BYTES, 16 << 20),
        (8, 512),
    ] {
        let f = TestPipeline::in_memory_with_store(|s| {
            s.with_repeat_filter_bytes(filter_bytes)
                .with_sort_budget(sort_budget)
        })
        .await;
        let o = f.ingest("incoming/orders.csv", orders.clone()).await;
        let b = f.ingest("incoming/barcodes.csv", barcodes.clone()).await;
        let tables = f
            .text(
                "SELECT md5(string_agg(x, ';' ORDER BY x)) FROM (
                     SELECT format('o %s %s %s', order_id, customer_id, source_line) x FROM orders
                     UNION ALL
                     SELECT format('b %s %s %s', barcode, order_id, source_line) FROM barcodes) t",
            )
            .await;
        let rejects = f
            .bucket
            .get_text(b.rejects_key.as_deref().unwrap())
            .await
            .unwrap();
        outcomes.push((
            o.counts,
            o.problems,
            b.counts,
            b.problems,
            tables,
            rejects,
            f.processed().await,
        ));
    }
    let (real, tiny) = (&outcomes[0], &outcomes[1]);
    assert_eq!(real.0.rejected, 40, "{:?}", real.0);
    assert_eq!(real.2.duplicates, 40, "{:?}", real.2);
    assert_eq!(real.2.accepted, 40_000, "{:?}", real.2);
    assert_eq!(real, tiny);
}

/// A first barcodes load writes processed_orders.csv and the tickets from
/// inside its transaction; both must be what the committed tables give.
#[tokio::test]
async fn a_first_barcodes_load_publishes_what_a_regeneration_writes() {
    let f = fixture().await;
    f.ingest(
        "incoming/o.csv",
        "order_id,customer_id\n1,10\n2,20\n3,10\n4,30\n",
    )
    .await;
    let client = f.db.pool.get().await.unwrap();
    // A customer on the tickets table with none: the totals must be merged
    // into the table, not copied over it.
    client
        .execute(
            "INSERT INTO customer_tickets (customer_id, tickets) VALUES (30, 0)",
            &[],
        )
        .await
        .unwrap();
    let report = f
        .ingest(
            "incoming/b.csv",
            "barcode,order_id\nB9,3\nB1,1\nB5,3\nU1,\nB2,1\nB1,2\nX1,99\nB3,2\n",
        )
        .await;
    assert_eq!(report.counts.accepted, 7, "{:?}", report.counts);
    assert_eq!(report.counts.duplicates, 1);
    assert_eq!(report.counts.warnings, 1, "X1 belongs to an unknown order");
    assert_eq!(problem_lines(&report, Severity::Warning), [8]);
    assert_eq!(report.processed_orders_written, Some(3));
    let published = f.processed().await;
    assert_eq!(
        published,
        "customer_id,order_id,barcodes\n10,1,\"[B1, B2]\"\n20,2,[B3]\n10,3,\"[B9, B5]\"\n"
    );
    let top = f.ingestor.db().top_customers(10).await.unwrap().customers;
    assert_eq!(
        top.iter()
            .map(|c| (c.customer_id.get(), c.tickets))
            .collect::<Vec<_>>(),
        [(10, 4), (20, 1)]
    );

    // Regenerated from the committed tables, the file is the same.
    client
        .execute("DELETE FROM published_outputs", &[])
        .await
        .unwrap();
    assert_eq!(
        f.ingestor
            .publish_processed_orders(&f.bucket.name)
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(f.processed().await, published);
}

/// The database remembers which data the bucket's processed_orders.csv
/// shows, but the bucket can lose or change the file behind its back: it is
/// deleted by hand, overwritten, or the bucket is new (a LocalStack restart
/// under `make up` keeps PostgreSQL but not the bucket). The next delivery
/// must restore it even when its file changes nothing.
#[tokio::test]
async fn a_processed_file_deleted_or_replaced_behind_the_pipelines_back_is_restored() {
    let f = fixture().await;
    f.ingest("incoming/o.csv", "order_id,customer_id\n1,10\n2,20\n")
        .await;
    let report = f
        .ingest("incoming/b.csv", "barcode,order_id\nB1,1\nB2,2\nB3,1\n")
        .await;
    assert_eq!(report.processed_orders_written, Some(2));
    let published = f.processed().await;

    f.bucket.delete(PROCESSED_ORDERS_KEY).await;
    let again = f
        .ingest("incoming/b2.csv", "barcode,order_id\nB1,1\n")
        .await;
    assert_eq!(again.counts.duplicates, 1, "the file changes nothing");
    assert_eq!(
        again.processed_orders_written,
        Some(2),
        "deleted: rewritten"
    );
    assert_eq!(f.processed().await, published);

    f.bucket.put(PROCESSED_ORDERS_KEY, "edited by hand\n").await;
    let redelivered = f.ingest_existing("incoming/b2.csv").await;
    assert_eq!(
        redelivered.processed_orders_written,
        Some(2),
        "replaced: rewritten"
    );
    assert_eq!(f.processed().await, published);

    let untouched = f.ingest_existing("incoming/b2.csv").await;
    assert_eq!(
        untouched.processed_orders_written, None,
        "intact: left alone"
    );
}
