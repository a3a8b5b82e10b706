//! The ingest rules, end to end through the real ingestor: which rows are
//! kept, which are rejected, and why (objects in memory, a fresh PostgreSQL
//! database per test). Deliveries, reports and publishing are in
//! ingest_deliveries.rs.

mod rules_support;

use order_pipeline::domain::outcome::{OrderAtLine, Severity};
use order_pipeline::ingest::IngestStatus;
use rules_support::{fixture, problem_lines, RulesFixture};

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
    assert_eq!(f.stat("unused_barcodes").await, 2);
    f.ingest("incoming/o.csv", "order_id,customer_id\n7,70\n")
        .await;
    let report = f
        .ingest("incoming/b2.csv", "barcode,order_id\nU1,7\n")
        .await;
    assert_eq!((report.counts.accepted, report.counts.rejected), (1, 0));
    assert_eq!(f.stat("unused_barcodes").await, 1);
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
    assert_eq!(
        report.counts.orders_without_barcodes, 1,
        "order 3 has no barcodes"
    );
    assert_eq!(report.counts.warnings, 0, "a figure, not a warning");
    assert_eq!(
        report.first_orders_without_barcodes,
        [OrderAtLine {
            line: 4,
            order_id: 3
        }]
    );
    assert!(problem_lines(&report, Severity::Warning).is_empty());
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
async fn an_orders_file_before_its_barcodes_counts_its_orders_without_barcodes_as_one_figure() {
    let f = fixture().await;
    let orders = |first_id: i64| {
        let mut body = String::from("order_id,customer_id\n");
        for id in first_id..first_id + 1000 {
            body.push_str(&format!("{id},{}\n", id % 7 + 1));
        }
        body
    };
    // A first load (direct) and a later one (staged) alike.
    for (key, first_id) in [("incoming/o1.csv", 1), ("incoming/o2.csv", 1001)] {
        let report = f.ingest(key, orders(first_id)).await;
        assert_eq!(report.counts.accepted, 1000, "{key}");
        assert_eq!(report.counts.orders_without_barcodes, 1000, "{key}");
        assert_eq!(report.counts.warnings, 0, "{key}");
        assert!(report.problems.is_empty(), "{key}: {:?}", report.problems);
        let first: Vec<(u64, i64)> = report
            .first_orders_without_barcodes
            .iter()
            .map(|o| (o.line, o.order_id))
            .collect();
        let expected: Vec<(u64, i64)> = (0..10).map(|i| (i as u64 + 2, first_id + i)).collect();
        assert_eq!(first, expected, "{key}");
    }
    let ledger = f
        .scalar("SELECT sum(orders_without_barcodes)::bigint FROM ingestions")
        .await;
    assert_eq!(ledger, 2000);
}
