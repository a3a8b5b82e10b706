//! The ingest function's time budget: files not started for lack of time
//! go back (SQS) or fail the invocation (a direct event), and load on the
//! next delivery.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ingest::budget::{Clock, TimeBudget};
use pipeline_test_support::{sqs_event_of, LogCapture, TestPipeline};
use serde_json::{json, Value};

/// A clock that moves on by `step` each time it is read, as if every file
/// took that long: the budget reads it once before each file but the first.
struct SteppingClock {
    now: AtomicU64,
    step: Duration,
}

impl SteppingClock {
    fn new(step: Duration) -> Self {
        Self {
            now: AtomicU64::new(0),
            step,
        }
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> SystemTime {
        let step = self.step.as_millis() as u64;
        UNIX_EPOCH + Duration::from_millis(self.now.fetch_add(step, Ordering::SeqCst) + step)
    }
}

/// Three orders files of one order each: `incoming/o1.csv` holds order 1...
async fn three_orders_files(f: &TestPipeline) -> Vec<String> {
    let mut keys = Vec::new();
    for id in 1..=3 {
        let key = format!("incoming/o{id}.csv");
        f.bucket
            .put(&key, format!("order_id,customer_id\n{id},10\n"))
            .await;
        keys.push(key);
    }
    keys
}

#[tokio::test]
async fn an_sqs_batch_starts_no_file_once_time_runs_short_and_hands_the_rest_back() {
    let f = TestPipeline::create().await;
    let keys = three_orders_files(&f).await;
    let batch = sqs_event_of(&[
        ("m1", f.bucket.put_event(&keys[0])),
        ("m2", f.bucket.put_event(&keys[1])),
        ("m3", f.bucket.put_event(&keys[2])),
    ]);
    // 100 s to the deadline, 30 s kept in reserve, 40 s per file: m1 starts,
    // m2 at 60 s left, m3 would start with 20 s left and does not.
    let clock = SteppingClock::new(Duration::from_secs(40));
    let mut budget = TimeBudget::until(
        UNIX_EPOCH + Duration::from_secs(100),
        Duration::from_secs(30),
        &clock,
    );
    let logs = LogCapture::default();
    let guard = logs.install("info");
    let answer = ingest::handle_invocation(&f.ingestor, batch, &mut budget)
        .await
        .unwrap();
    let answer = serde_json::to_value(answer).unwrap();
    drop(guard);
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "m3"}]})
    );
    logs.assert_a_line_with(&["message_id=\"m3\"", "not started"]);
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 2);
    assert_eq!(
        f.scalar("SELECT count(*) FROM orders WHERE order_id = 3")
            .await,
        0
    );

    // Handed back, m3 loads on its next delivery.
    let answer = ingest::handle_event(
        &f.ingestor,
        sqs_event_of(&[("m3", f.bucket.put_event(&keys[2]))]),
    )
    .await
    .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 3);
}

#[tokio::test]
async fn a_direct_event_whose_files_cannot_all_start_fails_so_lambda_retries_it() {
    let f = TestPipeline::create().await;
    let keys = three_orders_files(&f).await;
    let records: Vec<Value> = keys
        .iter()
        .map(|key| f.bucket.put_event(key)["Records"][0].clone())
        .collect();
    let event = json!({ "Records": records });
    // Already past the reserve: the first file starts all the same (refusing
    // it would never make progress), the others do not.
    let clock = SteppingClock::new(Duration::from_secs(1));
    let mut budget = TimeBudget::until(
        UNIX_EPOCH + Duration::from_secs(10),
        Duration::from_secs(30),
        &clock,
    );
    let error = ingest::handle_invocation(&f.ingestor, event.clone(), &mut budget)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&keys[1]) && error.contains(&keys[2]),
        "{error}"
    );
    assert!(!error.contains(&keys[0]), "{error}");
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 1);

    // Lambda's retry of the whole event loads the rest; the first is known.
    let answer = ingest::handle_event(&f.ingestor, event).await.unwrap();
    let statuses: Vec<&Value> = answer["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["status"])
        .collect();
    assert_eq!(
        statuses,
        [
            &json!("already_ingested"),
            &json!("loaded"),
            &json!("loaded")
        ],
        "{answer}"
    );
    assert_eq!(f.scalar("SELECT count(*) FROM orders").await, 3);
}
