//! The ingest rules, end to end through the real adapters: objects in
//! LocalStack S3, a fresh PostgreSQL database per test.

use order_pipeline::config::PROCESSED_ORDERS_KEY;
use order_pipeline::domain::outcome::Severity;
use order_pipeline::ingest::{IngestReport, IngestStatus};
use pipeline_test_support::TestPipeline;

async fn fixture() -> TestPipeline {
    TestPipeline::create().await
}

/// What the rule tests do besides the shared fixture's basics.
trait RulesFixture {
    async fn ingest(&self, key: &str, body: impl Into<Vec<u8>>) -> IngestReport;
    async fn ingest_existing(&self, key: &str) -> IngestReport;
    async fn text(&self, sql: &str) -> Option<String>;
    async fn processed(&self) -> String;
    async fn assert_aggregates_consistent(&self);
}

impl RulesFixture for TestPipeline {
    async fn ingest(&self, key: &str, body: impl Into<Vec<u8>>) -> IngestReport {
        self.bucket.put(key, body).await;
        self.ingest_existing(key).await
    }

    async fn ingest_existing(&self, key: &str) -> IngestReport {
        let report = self.ingest_key(key).await;
        self.assert_aggregates_consistent().await;
        report
    }

    async fn text(&self, sql: &str) -> Option<String> {
        let client = self.db.pool.get().await.unwrap();
        client.query_opt(sql, &[]).await.unwrap().map(|r| r.get(0))
    }

    async fn processed(&self) -> String {
        self.bucket.get_text(PROCESSED_ORDERS_KEY).await.unwrap()
    }

    /// The maintained aggregates must always equal a recount from scratch.
    async fn assert_aggregates_consistent(&self) {
        let client = self.db.pool.get().await.unwrap();
        let drift: i64 = client
            .query_one(
                "SELECT count(*) FROM (
                     SELECT customer_id, tickets FROM customer_tickets WHERE tickets > 0
                     EXCEPT
                     SELECT o.customer_id, count(*) FROM barcodes b JOIN orders o USING (order_id)
                     GROUP BY o.customer_id
                 ) d",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(drift, 0, "customer_tickets drifted from the barcodes");
        let row = client
            .query_one(
                "SELECT s.orders = (SELECT count(*) FROM orders),
                        s.barcodes = (SELECT count(*) FROM barcodes),
                        s.unused_barcodes = (SELECT count(*) FROM barcodes WHERE order_id IS NULL),
                        (SELECT sum(tickets) FROM customer_tickets) IS NOT DISTINCT FROM
                        (SELECT sum(c) FROM (SELECT count(*) c FROM barcodes b JOIN orders o USING (order_id)) x)
                        OR NOT EXISTS (SELECT 1 FROM customer_tickets)
                 FROM pipeline_stats s",
                &[],
            )
            .await
            .unwrap();
        for i in 0..4 {
            assert!(row.get::<_, bool>(i), "pipeline_stats column {i} drifted");
        }
    }
}

fn problem_lines(report: &IngestReport, severity: Severity) -> Vec<u64> {
    report
        .problems
        .iter()
        .filter(|p| p.severity == severity)
        .map(|p| p.line)
        .collect()
}

#[tokio::test]
async fn duplicate_barcodes_first_occurrence_wins_and_copies_are_reported() {
    let f = fixture().await;
    f.ingest("incoming/o.csv", "order_id,customer_id\n1,10\n2,20\n")
        .await;
    let report = f
        .ingest(
            "incoming/b1.csv",
            "barcode,order_id\nA1,1\nA2,1\nA1,2\nA3,\n",
        )
        .await;
    assert_eq!(report.counts.accepted, 3);
    assert_eq!(report.counts.rejected, 1);
    assert_eq!(report.counts.duplicates, 1);
    let dup = &report.problems[0];
    assert_eq!(
        (dup.line, dup.field.as_str(), dup.value.as_str()),
        (4, "barcode", "A1")
    );
    assert!(
        dup.reason.contains("first seen on line 2"),
        "{}",
        dup.reason
    );

    // Across files: the stored one wins; a sold barcode never moves.
    let report = f
        .ingest("incoming/b2.csv", "barcode,order_id\nA2,2\nA1,1\nA4,2\n")
        .await;
    assert_eq!(report.counts.accepted, 1);
    assert_eq!(report.counts.rejected, 2);
    assert!(
        report.problems[0]
            .reason
            .contains("already sold to order 1"),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems[0].reason.contains("incoming/b1.csv line 3"),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems[1].reason.contains("already stored"),
        "{:?}",
        report.problems
    );
    assert_eq!(
        f.scalar("SELECT order_id FROM barcodes WHERE barcode = 'A2'")
            .await,
        1
    );

    // The rejects file lists every rejected row with its raw values.
    let rejects = f
        .bucket
        .get_text(report.rejects_key.as_deref().unwrap())
        .await
        .unwrap();
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines[0], "line,field,value,reason,raw");
    assert!(
        lines[1].starts_with("2,barcode,A2,") && lines[1].ends_with(",\"A2,2\""),
        "{rejects}"
    );
    assert!(lines[2].starts_with("3,barcode,A1,"), "{rejects}");
}

#[tokio::test]
async fn a_stored_unsold_barcode_can_be_sold_later() {
    let f = fixture().await;
    f.ingest("incoming/b1.csv", "barcode,order_id\nU1,\nU2,\n")
        .await;
    assert_eq!(
        f.scalar("SELECT unused_barcodes FROM pipeline_stats").await,
        2
    );
    f.ingest("incoming/o.csv", "order_id,customer_id\n7,70\n")
        .await;
    let report = f
        .ingest("incoming/b2.csv", "barcode,order_id\nU1,7\n")
        .await;
    assert_eq!((report.counts.accepted, report.counts.rejected), (1, 0));
    assert_eq!(
        f.scalar("SELECT unused_barcodes FROM pipeline_stats").await,
        1
    );
    assert_eq!(
        f.scalar("SELECT tickets FROM customer_tickets WHERE customer_id = 70")
            .await,
        1
    );
    // Provenance points at the file that sold it.
    assert_eq!(
        f.text("SELECT i.key || ':' || b.source_line FROM barcodes b JOIN ingestions i ON i.id = b.ingestion_id WHERE barcode = 'U1'").await.unwrap(),
        "incoming/b2.csv:2"
    );
    // Unselling is not a thing: an empty order_id for a sold barcode is a duplicate.
    let report = f.ingest("incoming/b3.csv", "barcode,order_id\nU1,\n").await;
    assert_eq!(report.counts.rejected, 1);
    assert_eq!(
        f.scalar("SELECT order_id FROM barcodes WHERE barcode = 'U1'")
            .await,
        7
    );
}

#[tokio::test]
async fn repeated_orders_are_no_ops_and_conflicts_are_rejected() {
    let f = fixture().await;
    let report = f
        .ingest(
            "incoming/o1.csv",
            "order_id,customer_id\n1,10\n1,10\n1,11\n2,20\n",
        )
        .await;
    assert_eq!(report.counts.accepted, 2);
    assert_eq!(report.counts.rejected, 1, "{:?}", report.problems);
    assert_eq!(problem_lines(&report, Severity::Ignored), [3]);
    assert_eq!(problem_lines(&report, Severity::Rejected), [4]);
    let report = f
        .ingest(
            "incoming/o2.csv",
            "order_id,customer_id\n1,10\n2,21\n3,30\n",
        )
        .await;
    assert_eq!(report.counts.accepted, 1);
    assert_eq!(problem_lines(&report, Severity::Ignored), [2]);
    assert_eq!(problem_lines(&report, Severity::Rejected), [3]);
    let conflict = report.problems.iter().find(|p| p.line == 3).unwrap();
    assert!(
        conflict.reason.contains("already belongs to customer 20"),
        "{}",
        conflict.reason
    );
    assert_eq!(
        f.scalar("SELECT customer_id FROM orders WHERE order_id = 2")
            .await,
        20
    );
}

#[tokio::test]
async fn orders_without_barcodes_and_barcodes_of_unknown_orders_are_stored_and_reported() {
    let f = fixture().await;
    let report = f
        .ingest("incoming/b.csv", "barcode,order_id\nB1,1\nB2,1\nB3,2\n")
        .await;
    assert_eq!(report.counts.accepted, 3);
    assert_eq!(
        report.counts.warnings, 3,
        "barcodes of unknown orders are warned about"
    );
    assert!(report
        .problems
        .iter()
        .all(|p| p.severity == Severity::Warning));
    assert!(f
        .bucket
        .get_text(
            &report
                .report_key
                .as_deref()
                .unwrap()
                .replace(".json", ".rejected.csv")
        )
        .await
        .is_none());
    assert_eq!(report.rejects_key, None);

    let report = f
        .ingest("incoming/o.csv", "order_id,customer_id\n1,10\n2,20\n3,30\n")
        .await;
    assert_eq!(report.counts.warnings, 1, "order 3 has no barcodes");
    assert_eq!(problem_lines(&report, Severity::Warning), [4]);
    assert_eq!(
        f.processed().await,
        "customer_id,order_id,barcodes\n10,1,\"[B1, B2]\"\n20,2,[B3]\n"
    );
    assert_eq!(f.ingestor.db().orders_without_barcodes().await.unwrap(), 1);
    let top = f.ingestor.db().top_customers(10).await.unwrap().customers;
    assert_eq!(
        top.iter()
            .map(|c| (c.customer_id.get(), c.tickets))
            .collect::<Vec<_>>(),
        [(10, 2), (20, 1)]
    );
}

#[tokio::test]
async fn redelivery_of_the_same_object_changes_nothing() {
    let f = fixture().await;
    let first = f
        .ingest("incoming/o.csv", "order_id,customer_id\n1,10\n")
        .await;
    let version_before = f.scalar("SELECT data_version FROM pipeline_stats").await;
    let again = f.ingest_existing("incoming/o.csv").await;
    assert_eq!(again.status, IngestStatus::AlreadyIngested);
    assert_eq!(again.ingestion_id, first.ingestion_id);
    assert!(again.error.unwrap().contains("already ingested"));
    assert_eq!(f.scalar("SELECT count(*) FROM ingestions").await, 1);
    assert_eq!(
        f.scalar("SELECT data_version FROM pipeline_stats").await,
        version_before
    );

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
    // Line 2 is stored with a warning (no barcodes yet); line 3 is rejected.
    assert_eq!(stored["problems"][1]["line"], 3);
    assert_eq!(stored["problems"][1]["severity"], "rejected");
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
async fn hostile_files_are_rejected_whole_with_a_reason() {
    let f = fixture().await;
    let mut not_utf8 = b"order_id,customer_id\n1,10\n".to_vec();
    not_utf8.extend_from_slice(b"2,\xff\n");
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("incoming/empty.csv", Vec::new(), "empty"),
        (
            "incoming/header-only.csv",
            b"order_id,customer_id\r\n".to_vec(),
            "no rows",
        ),
        (
            "incoming/not-utf8.csv",
            not_utf8,
            "line 3: the file is not UTF-8",
        ),
        (
            "incoming/missing-column.csv",
            b"order_id,name\n1,x\n".to_vec(),
            "unrecognised header",
        ),
        (
            "incoming/binary.csv",
            vec![0x89, b'P', b'N', b'G', 0, 0, 1, 2],
            "not UTF-8",
        ),
    ];
    for (key, body, expected) in cases {
        let report = f.ingest(key, body).await;
        assert_eq!(report.status, IngestStatus::Rejected, "{key}");
        let error = report.error.clone().unwrap();
        assert!(error.contains(expected), "{key}: {error}");
        let stored = f
            .bucket
            .get_text(report.report_key.as_deref().unwrap())
            .await
            .unwrap();
        assert!(stored.contains("\"rejected\""), "{key}: {stored}");
        assert_eq!(
            f.text(&format!(
                "SELECT status FROM ingestions WHERE key = '{key}'"
            ))
            .await
            .as_deref(),
            Some("rejected")
        );
    }
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 0);
    // A rejected version is final: delivered again, it is not retried.
    let again = f.ingest_existing("incoming/empty.csv").await;
    assert_eq!(again.status, IngestStatus::AlreadyIngested);
}

#[tokio::test]
async fn hostile_rows_are_rejected_one_by_one_and_good_rows_kept() {
    let f = fixture().await;
    let huge_field = "9".repeat(1024 * 1024);
    let orders = format!(
        "\u{feff}Customer_ID , ORDER_ID\r\n10,1\r\n\r\n\"20\",\"2\"\r\n-5,3\r\n30,-4\r\n40,99999999999999999999\r\n50\r\n60,6,extra\r\n{huge_field},7\r\n70,8\r\n"
    );
    let report = f.ingest("incoming/orders.csv", orders).await;
    assert_eq!(report.counts.rows_read, 9);
    assert_eq!(report.counts.accepted, 3, "{:?}", report.problems);
    let rejected: Vec<(u64, &str)> = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Rejected)
        .map(|p| (p.line, p.field.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            (5, "customer_id"),
            (6, "order_id"),
            (7, "order_id"),
            (8, "(row)"),
            (9, "(row)"),
            (10, "customer_id")
        ]
    );
    let barcodes =
        "barcode,order_id\n\"C,1\",1\n\"C\n2\",1\nC3,1\n0004,x\nC5,\n\"00000000001\",2\n";
    let report = f.ingest("incoming/barcodes.csv", barcodes).await;
    assert_eq!(report.counts.accepted, 3, "{:?}", report.problems);
    assert_eq!(problem_lines(&report, Severity::Rejected), [2, 3, 6]);
    assert_eq!(
        f.processed().await,
        "customer_id,order_id,barcodes\n10,1,[C3]\n20,2,[00000000001]\n"
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
        let f = TestPipeline::create_with_store(|s| {
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
    let f = TestPipeline::create().await;
    f.ingest("incoming/o.csv", "order_id,customer_id\n1,10\n2,20\n")
        .await;
    let report = f
        .ingest("incoming/b.csv", "barcode,order_id\nB1,1\nB2,2\nB3,1\n")
        .await;
    assert_eq!(report.processed_orders_written, Some(2));
    let published = f.processed().await;

    f.bucket
        .client
        .delete_object()
        .bucket(&f.bucket.name)
        .key(PROCESSED_ORDERS_KEY)
        .send()
        .await
        .unwrap();
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
