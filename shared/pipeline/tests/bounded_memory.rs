//! Peak memory of an ingest stays flat whatever one record holds. A test
//! binary of its own, so that no other test's allocations count.

use order_pipeline::domain::outcome::Severity;
use std::io::Write;

use pipeline_test_support::TestPipeline;

/// Bytes of text after the unterminated quote: 50 times the record limit.
const FLOOD_BYTES: usize = 50 * 1024 * 1024;
/// What the ingest of that file may add to the process's peak RSS: half the
/// flood, many times the reader's own buffers (a few MiB).
const PEAK_GROWTH_BUDGET: u64 = FLOOD_BYTES as u64 / 2;

/// The process's peak resident set (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    kib * 1024
}

/// Starts measuring the peak again from the current RSS (Linux 4.0+).
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting VmHWM through clear_refs");
}

#[tokio::test]
async fn an_unterminated_quote_before_50_mb_of_text_keeps_memory_flat_and_the_rest_loads() {
    let f = TestPipeline::create().await;
    // Warm up the clients and pools, so that only the big file is measured.
    f.bucket
        .put("incoming/warm.csv", "order_id,customer_id\n9,90\n")
        .await;
    f.ingest_key("incoming/warm.csv").await;

    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"order_id,customer_id\n1,10\n2,20\n3,\"")
        .unwrap();
    let chunk = vec![b'x'; 1024 * 1024];
    for _ in 0..FLOOD_BYTES / chunk.len() {
        file.write_all(&chunk).unwrap();
    }
    file.write_all(b"\n4,40\n5,50\n").unwrap();
    file.flush().unwrap();
    f.bucket
        .client
        .put_object()
        .bucket(&f.bucket.name)
        .key("incoming/flood.csv")
        .body(
            aws_sdk_s3::primitives::ByteStream::from_path(file.path())
                .await
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    reset_peak_rss();
    let before = peak_rss();
    let report = f.ingest_key("incoming/flood.csv").await;
    let growth = peak_rss().saturating_sub(before);

    let rejected: Vec<(u64, &str)> = report
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Rejected)
        .map(|p| (p.line, p.reason.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [(4, "unterminated quote opened at line 4 (the record is longer than the limit of 1048576 bytes (CSV_MAX_RECORD_BYTES)); reading resumed at line 5")]
    );
    assert_eq!(report.counts.accepted, 4);
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 5);
    eprintln!("peak RSS grew by {} KiB", growth / 1024);
    assert!(
        growth < PEAK_GROWTH_BUDGET,
        "peak RSS grew by {growth} bytes reading a {FLOOD_BYTES}-byte record (budget {PEAK_GROWTH_BUDGET})"
    );
}
