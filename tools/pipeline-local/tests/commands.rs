//! The pipeline-local binary as a user runs it, interrupted or not: an
//! `ingest` killed half way, `process` on the sample files without AWS, and
//! Ctrl-C during `process`. Nothing partial may stay behind.

use std::time::{Duration, Instant};

use order_pipeline::ingest::Ingestor;
use order_pipeline::storage::S3Store;
use pipeline_test_support::{TestBucket, TestDatabase};

/// processed_orders.csv for data/orders.csv and data/barcodes.csv.
const SAMPLE_PROCESSED: &str = include_str!("data/processed_orders.csv");

/// A process killed (SIGKILL) in the middle of a large load leaves nothing
/// behind, and delivering the object again loads all of it.
#[tokio::test]
async fn a_load_killed_half_way_stores_nothing_and_redelivery_completes_it() {
    let bucket = TestBucket::create().await;
    let db = TestDatabase::create().await;
    let rows = 300_000;
    let mut body = String::from("barcode,order_id\n");
    for i in 0..rows {
        body.push_str(&format!("K{i:09},{}\n", i / 3 + 1));
    }
    bucket.put("incoming/big-barcodes.csv", body).await;

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipeline-local"))
        .args([
            "--bucket",
            &bucket.name,
            "ingest",
            "incoming/big-barcodes.csv",
        ])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start pipeline-local ingest");

    let client = db.pool.get().await.unwrap();
    wait_for_copy(&db, &mut child).await;
    child.kill().await.unwrap();

    // The server notices the dead connection and rolls its transaction back.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let others: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()
                   AND state <> 'idle'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if others == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed load's connection lingers"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM barcodes").await, 0);
    assert_eq!(count("SELECT count(*) FROM ingestions").await, 0);
    assert_eq!(count("SELECT barcodes FROM pipeline_stats").await, 0);

    // Redelivery completes it.
    let ingestor = Ingestor::new(S3Store::new(bucket.client.clone()), db.store());
    let report = ingestor
        .ingest(&order_pipeline::storage::ObjectRef::new(
            &bucket.name,
            "incoming/big-barcodes.csv",
        ))
        .await
        .unwrap();
    assert_eq!(report.status, order_pipeline::ingest::IngestStatus::Loaded);
    assert_eq!(report.counts.accepted, rows);
    assert_eq!(count("SELECT count(*) FROM barcodes").await, rows as i64);
}

fn pipeline_local_process(
    db: &TestDatabase,
    out_dir: &std::path::Path,
    files: &[&std::path::Path],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipeline-local"));
    command
        .arg("process")
        .args(files)
        .arg("--out-dir")
        .arg(out_dir)
        .env("DATABASE_URL", &db.url)
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn the_local_command_processes_files_without_aws_and_prints_the_summary() {
    let db = TestDatabase::create().await;
    let out = tempfile::tempdir().unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let output = pipeline_local_process(
        &db,
        out.path(),
        &[&data.join("orders.csv"), &data.join("barcodes.csv")],
    )
    .output()
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("duplicates in these files: 2\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("orders without barcodes:   2\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("unused barcodes:           3\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("customer_id, amount_of_tickets\n11, 4\n12, 4\n10, 3\n13, 1\n"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("processed_orders.csv")).unwrap(),
        SAMPLE_PROCESSED
    );
    // Reports are kept per version of the input; a local file's version is
    // its size and modification time.
    let reports: Vec<String> = std::fs::read_dir(out.path().join("reports/incoming/barcodes.csv"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        reports
            .iter()
            .any(|name| name.starts_with("etag-local-") && name.ends_with(".rejected.csv")),
        "{reports:?}"
    );
}

#[tokio::test]
async fn ctrl_c_stops_the_local_command_cleanly_with_nothing_partial_saved() {
    let db = TestDatabase::create().await;
    let out = tempfile::tempdir().unwrap();
    let big = out.path().join("big-orders.csv");
    let mut body = String::from("order_id,customer_id\n");
    for i in 1..=400_000 {
        body.push_str(&format!("{i},{}\n", i % 1000 + 1));
    }
    std::fs::write(&big, body).unwrap();
    let mut child = pipeline_local_process(&db, out.path(), &[&big])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = db.pool.get().await.unwrap();
    wait_for_copy(&db, &mut child).await;
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let output = child.wait_with_output().await.unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("interrupted: nothing from"), "{stderr}");
    let orders: i64 = client
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(orders, 0);
    assert!(!out.path().join("processed_orders.csv").exists());
}

/// Waits until a load is under way in `db` (its COPY is running), while the
/// child that runs it is still alive.
async fn wait_for_copy(db: &TestDatabase, child: &mut tokio::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let copying = db
            .scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND state = 'active' AND query LIKE 'COPY %'",
            )
            .await;
        if copying > 0 {
            return;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the load finished before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "the load never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
