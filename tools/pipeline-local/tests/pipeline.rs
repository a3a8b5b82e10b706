//! End to end on real LocalStack S3 and SQS and real PostgreSQL: a file put
//! into the bucket is announced to the queue by the bucket notification, the
//! forwarder hands the batch to the ingest handler, and the result shows in
//! the database, the bucket and the API. Failures retry, then dead-letter.

use std::time::{Duration, Instant};

use anyhow::Result;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use order_pipeline::config::PROCESSED_ORDERS_KEY;
use order_pipeline::ingest::Ingestor;
use order_pipeline::storage::S3Store;
use pipeline_local::forwarder::{self, Invoke, PollOutcome, Source};
use pipeline_local::resources::{self, Provisioned, QueueSettings, ResourceNames};
use pipeline_local::upload::{upload_file, Uploaded};
use pipeline_test_support::{block_on_cleanup, localstack_config, TestBucket, TestDatabase};
use serde_json::{json, Value};
use tower::ServiceExt;

/// Runs the ingest function's handler in this process instead of over HTTP.
struct InProcess<'a>(&'a Ingestor<S3Store>);

impl Invoke for InProcess<'_> {
    async fn invoke(&self, event: Value) -> Result<Value> {
        ingest::handle_event(self.0, event)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// A bucket, queue and dead-letter queue of this test's own, deleted at the end.
struct World {
    bucket: TestBucket,
    provisioned: Provisioned,
    sqs: aws_sdk_sqs::Client,
    source: Source,
}

impl World {
    async fn create(settings: QueueSettings) -> Self {
        let bucket = TestBucket::create().await;
        let config = localstack_config().await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let names = ResourceNames::for_bucket(&bucket.name);
        let provisioned = resources::ensure(&bucket.client, &sqs, &names, settings)
            .await
            .expect("provision LocalStack resources");
        let source = Source {
            queue_url: provisioned.queue_url.clone(),
            queue_arn: provisioned.queue_arn.clone(),
            region: "us-east-1".into(),
            batch_size: forwarder::BATCH_SIZE,
        };
        Self {
            bucket,
            provisioned,
            sqs,
            source,
        }
    }

    async fn depth(&self, queue_url: &str) -> u64 {
        resources::queue_depth(&self.sqs, queue_url).await.unwrap()
    }

    /// Polls through `invoker` until `done` holds, for at most 60 s.
    async fn forward_until<I: Invoke>(
        &self,
        invoker: &I,
        what: &str,
        mut done: impl AsyncFnMut(&Self) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self).await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            forwarder::poll_once(&self.sqs, &self.source, invoker, Duration::from_secs(1))
                .await
                .unwrap();
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let urls = [
            self.provisioned.queue_url.clone(),
            self.provisioned.dead_letter_queue_url.clone(),
        ];
        block_on_cleanup(async move {
            let sqs = aws_sdk_sqs::Client::new(&localstack_config().await);
            for url in urls {
                let _ = sqs.delete_queue().queue_url(url).send().await;
            }
        });
    }
}

async fn count(db: &TestDatabase, sql: &str) -> i64 {
    db.pool
        .get()
        .await
        .unwrap()
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

/// processed_orders.csv for data/orders.csv and data/barcodes.csv.
const SAMPLE_PROCESSED: &str = include_str!("data/processed_orders.csv");

#[tokio::test]
async fn a_file_dropped_into_the_bucket_reaches_postgres_the_bucket_and_the_api() {
    let world = World::create(QueueSettings::default()).await;
    let db = TestDatabase::create().await;
    let ingestor = Ingestor::new(S3Store::new(world.bucket.client.clone()), db.store());

    world
        .bucket
        .put(
            "incoming/orders.csv",
            include_str!("../../../data/orders.csv"),
        )
        .await;
    world
        .bucket
        .put(
            "incoming/barcodes.csv",
            include_str!("../../../data/barcodes.csv"),
        )
        .await;
    // Outside the notification's filter: never queued, never ingested.
    world
        .bucket
        .put("elsewhere/orders.csv", "order_id,customer_id\n99,99\n")
        .await;

    let queue = world.provisioned.queue_url.clone();
    world
        .forward_until(
            &InProcess(&ingestor),
            "both files to be ingested",
            async |w: &World| {
                w.depth(&queue).await == 0
                    && w.bucket.get_text(PROCESSED_ORDERS_KEY).await.as_deref()
                        == Some(SAMPLE_PROCESSED)
            },
        )
        .await;

    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 8);
    assert_eq!(count(&db, "SELECT count(*) FROM barcodes").await, 15);
    assert_eq!(
        count(&db, "SELECT count(*) FROM barcodes WHERE order_id IS NULL").await,
        3
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM orders WHERE order_id = 99").await,
        0
    );

    let state = pipeline_api::analytics::AnalyticsState::new(
        db.store(),
        pipeline_test_support::test_authenticator(),
        world.bucket.client.clone(),
        world.bucket.name.clone(),
    );
    let token = pipeline_test_support::test_token("analytics:read");
    let response = pipeline_api::analytics::router(state)
        .oneshot(
            Request::get("/analytics/top-customers?limit=3")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!([
            {"customer_id": 11, "tickets": 4},
            {"customer_id": 12, "tickets": 4},
            {"customer_id": 10, "tickets": 3}
        ])
    );
    assert_eq!(
        world.depth(&world.provisioned.dead_letter_queue_url).await,
        0
    );
}

#[tokio::test]
async fn a_failing_record_is_retried_then_dead_lettered_and_redriven() {
    let settings = QueueSettings {
        visibility_timeout_secs: 1,
        max_receive_count: 2,
        ..QueueSettings::default()
    };
    let world = World::create(settings).await;
    let db = TestDatabase::create().await;
    let ingestor = Ingestor::new(S3Store::new(world.bucket.client.clone()), db.store());
    let invoker = InProcess(&ingestor);

    // A notification for an object that is not there (yet): every attempt fails.
    let missing = world.bucket.put_event("incoming/late-orders.csv");
    world
        .sqs
        .send_message()
        .queue_url(&world.provisioned.queue_url)
        .message_body(missing.to_string())
        .send()
        .await
        .unwrap();
    // A good file in the same queue must not be held back by the bad one.
    world
        .bucket
        .put("incoming/orders.csv", "order_id,customer_id\n1,10\n")
        .await;

    let dlq = world.provisioned.dead_letter_queue_url.clone();
    let queue = world.provisioned.queue_url.clone();
    world
        .forward_until(
            &invoker,
            "the failing record to be dead-lettered",
            async |w: &World| w.depth(&dlq).await == 1 && w.depth(&queue).await == 0,
        )
        .await;
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 1);

    // Fix the cause, send the message back, and it goes through.
    world
        .bucket
        .put("incoming/late-orders.csv", "order_id,customer_id\n2,20\n")
        .await;
    let moved = pipeline_local::redrive(&world.sqs, &dlq, &queue)
        .await
        .unwrap();
    assert_eq!(moved, 1);
    world
        .forward_until(
            &invoker,
            "the redriven record to be ingested",
            async |w: &World| w.depth(&queue).await == 0 && w.depth(&dlq).await == 0,
        )
        .await;
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 2);
}

/// A stand-in for `cargo lambda watch`'s Invoke API that answers as told:
/// failure injection that the real service cannot give on demand.
async fn fake_invoke_api(status: u16, header: Option<&'static str>, body: Value) -> String {
    let app = axum::Router::new().route(
        "/2015-03-31/functions/ingest/invocations",
        axum::routing::post(move || {
            let body = body.clone();
            async move {
                let mut response = axum::response::Response::builder().status(status);
                if let Some(header) = header {
                    response = response.header("X-Amz-Function-Error", header);
                }
                response.body(Body::from(body.to_string())).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[tokio::test]
async fn the_forwarder_keeps_messages_the_invoke_api_reports_as_failed() {
    let settings = QueueSettings {
        visibility_timeout_secs: 1,
        ..QueueSettings::default()
    };
    let world = World::create(settings).await;
    // Drain the s3:TestEvent LocalStack queued when the notification was set up.
    let ok = forwarder::LambdaInvokeApi::new(
        &fake_invoke_api(200, None, json!({"batchItemFailures": []})).await,
        "ingest",
    );
    let queue = world.provisioned.queue_url.clone();
    world
        .forward_until(&ok, "the test event to drain", async |w: &World| {
            w.depth(&queue).await == 0
        })
        .await;

    let cases = [
        (
            "HTTP 500 (cargo lambda watch)",
            fake_invoke_api(500, None, json!({"errorType": "x", "errorMessage": "boom"})).await,
        ),
        (
            "200 with X-Amz-Function-Error (AWS)",
            fake_invoke_api(200, Some("Unhandled"), json!({"errorMessage": "boom"})).await,
        ),
    ];
    for (what, url) in cases {
        world
            .sqs
            .send_message()
            .queue_url(&queue)
            .message_body("{}")
            .send()
            .await
            .unwrap();
        let failing = forwarder::LambdaInvokeApi::new(&url, "ingest");
        let mut outcome = PollOutcome::default();
        let deadline = Instant::now() + Duration::from_secs(30);
        while outcome.received == 0 {
            assert!(Instant::now() < deadline, "{what}: message never received");
            outcome =
                forwarder::poll_once(&world.sqs, &world.source, &failing, Duration::from_secs(1))
                    .await
                    .unwrap();
        }
        assert_eq!((outcome.succeeded, outcome.failed), (0, 1), "{what}");
        assert_eq!(
            world.depth(&queue).await,
            1,
            "{what}: the failed message stays queued"
        );
        // A healthy function then takes it, and it is deleted.
        world
            .forward_until(&ok, "the message to be delivered", async |w: &World| {
                w.depth(&queue).await == 0
            })
            .await;
    }
}

#[tokio::test]
async fn uploading_the_same_file_twice_sends_it_once_and_new_content_as_a_new_version() {
    let world = World::create(QueueSettings::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.csv");
    std::fs::write(&file, "order_id,customer_id\n1,10\n").unwrap();
    let upload = || {
        upload_file(
            &world.bucket.client,
            &world.bucket.name,
            "incoming/orders.csv",
            &file,
        )
    };

    let first = upload().await.unwrap();
    assert!(
        matches!(
            first,
            Uploaded::NewVersion {
                version_id: Some(_)
            }
        ),
        "{first:?}"
    );
    assert_eq!(upload().await.unwrap(), Uploaded::Unchanged);
    std::fs::write(&file, "order_id,customer_id\n1,10\n2,20\n").unwrap();
    let changed = upload().await.unwrap();
    assert!(
        matches!(changed, Uploaded::NewVersion { .. }) && changed != first,
        "{changed:?}"
    );

    let versions = world
        .bucket
        .client
        .list_object_versions()
        .bucket(&world.bucket.name)
        .prefix("incoming/orders.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(
        versions.versions().len(),
        2,
        "one version per distinct content"
    );
}

#[tokio::test]
async fn two_quick_uploads_to_one_key_are_both_ingested_through_the_bucket_notification() {
    let world = World::create(QueueSettings::default()).await;
    let db = TestDatabase::create().await;
    let ingestor = Ingestor::new(S3Store::new(world.bucket.client.clone()), db.store());
    // Both land before either event is handled.
    let key = "incoming/orders.csv";
    let v1 = world.bucket.put(key, "order_id,customer_id\n1,10\n").await;
    let v2 = world.bucket.put(key, "order_id,customer_id\n2,20\n").await;

    let queue = world.provisioned.queue_url.clone();
    world
        .forward_until(&InProcess(&ingestor), "both versions", async |w: &World| {
            w.depth(&queue).await == 0
        })
        .await;
    let client = db.pool.get().await.unwrap();
    let ledger: Vec<(String, String)> = client
        .query(
            "SELECT version_id, status FROM ingestions ORDER BY version_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut expected = vec![
        (v1.unwrap(), "loaded".to_owned()),
        (v2.unwrap(), "loaded".to_owned()),
    ];
    expected.sort();
    assert_eq!(ledger, expected);
    assert_eq!(count(&db, "SELECT count(*) FROM orders").await, 2);
}
