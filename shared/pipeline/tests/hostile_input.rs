//! Input that tries to break the reader (NUL bytes, formulas, reads that fail
//! mid-stream, records without end), end to end through LocalStack S3 and
//! PostgreSQL: bad rows are rejected alone, good rows load, transport
//! trouble is retried.

use order_pipeline::csv_records::CsvLimits;
use order_pipeline::domain::outcome::Severity;
use order_pipeline::error_chain::ErrorChain;
use order_pipeline::ingest::{IngestError, IngestReport, IngestStatus, Ingestor};
use order_pipeline::postgres::load::problems::Problem;
use order_pipeline::storage::{ObjectRef, S3Store};
use pipeline_test_support::{FaultyStore, TestPipeline};

async fn ingest(f: &TestPipeline, key: &str, body: impl Into<Vec<u8>>) -> IngestReport {
    f.bucket.put(key, body).await;
    f.ingest_key(key).await
}

async fn text(f: &TestPipeline, sql: &str) -> Option<String> {
    let client = f.db.pool.get().await.unwrap();
    client.query_opt(sql, &[]).await.unwrap().map(|r| r.get(0))
}

/// The rejected problems of a report, by line.
fn rejected(report: &IngestReport) -> impl Iterator<Item = &Problem> {
    report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Rejected)
}

fn rejected_values(report: &IngestReport) -> Vec<&str> {
    rejected(report).map(|p| p.value.as_str()).collect()
}

fn rejections(report: &IngestReport) -> Vec<(u64, &str, &str)> {
    rejected(report)
        .map(|p| (p.line, p.field.as_str(), p.reason.as_str()))
        .collect()
}

/// The cells of a rejects file, header first.
async fn rejects_cells(f: &TestPipeline, report: &IngestReport) -> Vec<Vec<String>> {
    let key = report.rejects_key.as_deref().expect("a rejects file");
    let body = f.bucket.get_text(key).await.expect("rejects file exists");
    csv::Reader::from_reader(body.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn a_nul_byte_rejects_its_row_alone_and_is_shown_escaped() {
    let f = TestPipeline::create().await;
    let report = ingest(
        &f,
        "incoming/b.csv",
        "barcode,order_id\nGOOD1,1\nA\x00B,1\nGOOD2,\n9,1\x00\n",
    )
    .await;
    assert_eq!(report.status, IngestStatus::Loaded, "{:?}", report.error);
    assert_eq!((report.counts.accepted, report.counts.rejected), (2, 2));
    assert_eq!(f.scalar("SELECT count(*) FROM barcodes").await, 2);
    assert_eq!(rejected_values(&report), [r"A\0B", r"1\0"]);
    let rows = rejects_cells(&f, &report).await;
    assert_eq!(rows[0][2], r"A\0B");
    assert_eq!(rows[0][4], r"A\0B,1");
    assert!(rows[0][3].contains(r"'\0'"), "{}", rows[0][3]);
    assert_eq!(rows[1][4], r"9,1\0");
}

#[tokio::test]
async fn a_nul_byte_in_the_header_rejects_the_file_with_a_readable_reason() {
    let f = TestPipeline::create().await;
    let report = ingest(&f, "incoming/h.csv", "bar\x00code,order_id\nGOOD1,1\n").await;
    assert_eq!(report.status, IngestStatus::Rejected, "{report:?}");
    let error = report.error.unwrap();
    assert!(error.contains(r"bar\0code"), "{error}");
    assert_eq!(
        text(
            &f,
            "SELECT error FROM ingestions WHERE key = 'incoming/h.csv'"
        )
        .await
        .as_deref(),
        Some(error.as_str())
    );
    // An unused column named with a NUL is reported escaped, and the rows load.
    let report = ingest(
        &f,
        "incoming/x.csv",
        "barcode,order_id,no\x00te\nGOOD1,1,x\n",
    )
    .await;
    assert_eq!(report.status, IngestStatus::Loaded, "{:?}", report.error);
    assert_eq!(report.extra_columns, [r"no\0te"]);
}

#[tokio::test]
async fn rejects_csv_neutralises_formulas_and_the_report_keeps_them_raw() {
    let f = TestPipeline::create().await;
    let report = ingest(
        &f,
        "incoming/o.csv",
        "order_id,customer_id\n=1+1,10\n-5,10\n@SUM(A1),10\n+1x,10\n1,10\n",
    )
    .await;
    assert_eq!(report.counts.rejected, 4, "{:?}", report.problems);
    assert_eq!(rejected_values(&report), ["=1+1", "-5", "@SUM(A1)", "+1x"]);
    let cells: Vec<(String, String)> = rejects_cells(&f, &report)
        .await
        .into_iter()
        .map(|row| (row[2].clone(), row[4].clone()))
        .collect();
    let expected = [
        ("'=1+1", "'=1+1,10"),
        ("'-5", "'-5,10"),
        ("'@SUM(A1)", "'@SUM(A1),10"),
        ("'+1x", "'+1x,10"),
    ]
    .map(|(value, raw)| (value.to_owned(), raw.to_owned()));
    assert_eq!(cells, expected);
}

#[tokio::test]
async fn a_read_that_fails_mid_stream_is_retried_and_then_loads() {
    let f = TestPipeline::create().await;
    let mut body = String::from("order_id,customer_id\n");
    for id in 1..=2000 {
        body.push_str(&format!("{id},{}\n", id % 7 + 1));
    }
    f.bucket.put("incoming/o.csv", body).await;
    let flaky = FaultyStore::new(S3Store::new(f.bucket.client.clone())).failing_reads(1, 4000);
    let ingestor = Ingestor::new(flaky, f.db.store());
    let object = ObjectRef::new(&f.bucket.name, "incoming/o.csv");

    match ingestor.ingest(&object).await {
        Err(IngestError::Storage(error)) => {
            assert_eq!(
                (error.bucket.as_str(), error.key.as_str()),
                (f.bucket.name.as_str(), "incoming/o.csv")
            );
            let error = ErrorChain(&error).to_string();
            assert!(error.contains("connection reset"), "{error}");
        }
        other => panic!("a failed read must be retried, got {other:?}"),
    }
    assert_eq!(
        text(&f, "SELECT status FROM ingestions").await.as_deref(),
        Some("failed")
    );
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 0);

    let report = ingestor.ingest(&object).await.unwrap();
    assert_eq!(report.status, IngestStatus::Loaded, "{:?}", report.error);
    assert_eq!(report.counts.accepted, 2000);
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 2000);
}

#[tokio::test]
async fn an_unterminated_quote_is_rejected_alone_and_the_rest_loads() {
    let f = TestPipeline::create().await;
    let report = ingest(
        &f,
        "incoming/short.csv",
        "order_id,customer_id\n1,10\n2,\"20\n3,30\n4,40\n",
    )
    .await;
    assert_eq!(
        rejections(&report),
        [(3, "(row)", "unterminated quote opened at line 3 (no closing quote before the end of the file); reading resumed at line 4")]
    );
    assert_eq!(report.counts.accepted, 3);

    // Past the record limit (1 MiB), the quote is cut there.
    let mut long = String::from("order_id,customer_id\n101,10\n102,\"20\n");
    let mut id = 103;
    while long.len() < 2 * 1024 * 1024 {
        long.push_str(&format!("{id},{}\n", id % 9 + 1));
        id += 1;
    }
    let report = ingest(&f, "incoming/long.csv", long).await;
    assert_eq!(
        rejections(&report),
        [(3, "(row)", "unterminated quote opened at line 3 (the record is longer than the limit of 1048576 bytes (CSV_MAX_RECORD_BYTES)); reading resumed at line 4")]
    );
    assert_eq!(report.counts.accepted, id - 102);
    assert_eq!(
        f.scalar("SELECT count(*) FROM orders").await,
        3 + (id - 102) as i64
    );
}

#[tokio::test]
async fn fields_columns_and_headers_over_their_limits_are_rejected_with_a_reason() {
    let f = TestPipeline::create().await;
    let long_barcode = "B".repeat(100 * 1024);
    let wide = vec!["1"; 300].join(",");
    let body = format!("barcode,order_id\nGOOD1,1\n{long_barcode},1\n{wide}\nGOOD2,2\n");
    let report = ingest(&f, "incoming/b.csv", body).await;
    assert_eq!(
        rejections(&report),
        [
            (
                3,
                "barcode",
                "the field is longer than the limit of 65536 bytes (CSV_MAX_FIELD_BYTES)"
            ),
            (
                4,
                "(row)",
                "more than 256 fields (CSV_MAX_COLUMNS); the rest of line 4 was skipped"
            ),
        ]
    );
    assert_eq!(report.counts.accepted, 2);
    // What is carried of the input is bounded, in the report and the rejects file.
    let rows = rejects_cells(&f, &report).await;
    let raw = &rows[0][4];
    assert!(raw.len() < 1100, "{} bytes carried", raw.len());
    assert!(
        raw.ends_with(&format!("…(truncated, {} bytes)", long_barcode.len() + 3)),
        "{}",
        &raw[raw.len() - 40..]
    );

    let header = format!("barcode,order_id,{}\nGOOD3,3\n", "n".repeat(70 * 1024));
    let report = ingest(&f, "incoming/h.csv", header).await;
    assert_eq!(report.status, IngestStatus::Rejected);
    assert_eq!(
        report.error.as_deref(),
        Some("line 1: the header cannot be read: the header is longer than the limit of 65536 bytes (CSV_MAX_HEADER_BYTES); is this a CSV file with a header line?")
    );
}

#[tokio::test]
async fn configured_limits_apply_to_the_ingest() {
    let f = TestPipeline::create().await;
    f.bucket
        .put(
            "incoming/o.csv",
            "order_id,customer_id\n1,10\n22222222,20\n3,30\n",
        )
        .await;
    let limits = CsvLimits {
        max_record_bytes: 10,
        max_field_bytes: 6,
        ..CsvLimits::default()
    };
    let ingestor =
        Ingestor::new(S3Store::new(f.bucket.client.clone()), f.db.store()).with_csv_limits(limits);
    let report = ingestor
        .ingest(&ObjectRef::new(&f.bucket.name, "incoming/o.csv"))
        .await
        .unwrap();
    assert_eq!(
        rejections(&report),
        [(
            3,
            "order_id",
            "the field is longer than the limit of 6 bytes (CSV_MAX_FIELD_BYTES)"
        )]
    );
    assert_eq!(report.counts.accepted, 2);
}
