//! The chaos tool's own pieces, cheaply: the Lambda service emulator with a
//! real process (a shell runtime that speaks the Runtime API with curl) and
//! the real forwarder's Invoke API client, and the S3 proxy in front of the
//! real LocalStack.

use std::time::Duration;

use chaos::lambda_service::LambdaService;
use chaos::s3_proxy::{FaultPlan, S3Proxy};
use pipeline_local::forwarder::{Invoke, LambdaInvokeApi};
use serde_json::json;

/// A function runtime in sh: takes each event from the Runtime API and
/// answers `{"echo": event}`, except that an event holding "hang" is never
/// answered.
const ECHO_RUNTIME: &str = r#"
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while true; do
  headers=$(mktemp)
  event=$(curl -sS -D "$headers" "$api/next") || exit 1
  id=$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d' ' -f2 | tr -d '\r')
  rm -f "$headers"
  case "$event" in *hang*) exec sleep 600 ;; esac
  curl -sS -o /dev/null -X POST -d "{\"echo\":$event}" "$api/$id/response"
done
"#;

fn echo_function(
    service: &LambdaService,
    dir: &tempfile::TempDir,
) -> chaos::lambda_service::FunctionProcess {
    let script = dir.path().join("runtime.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{ECHO_RUNTIME}")).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    service.run_function(
        script,
        vec![("PATH".into(), "/usr/bin:/bin".into())],
        dir.path().join("function.log"),
    )
}

#[tokio::test]
async fn the_runtime_gets_each_invocation_and_its_answer_goes_back_to_the_invoker() {
    let service = LambdaService::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _function = echo_function(&service, &dir);
    let invoker = LambdaInvokeApi::new(service.invoke_url(), "ingest");

    let answer = invoker.invoke(json!({"n": 1})).await.unwrap();
    assert_eq!(answer, json!({"echo": {"n": 1}}));
    let answer = invoker.invoke(json!({"n": 2})).await.unwrap();
    assert_eq!(answer, json!({"echo": {"n": 2}}));
    assert_eq!(service.invocations(), 2);
}

#[tokio::test]
async fn a_killed_function_fails_its_invocation_as_lambda_does_and_a_fresh_process_takes_the_next()
{
    let service = LambdaService::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut function = echo_function(&service, &dir);
    let invoker = LambdaInvokeApi::new(service.invoke_url(), "ingest");

    let hung = {
        let invoker = LambdaInvokeApi::new(service.invoke_url(), "ingest");
        tokio::spawn(async move { invoker.invoke(json!("hang")).await })
    };
    service.wait_for_invocation(0).await;
    assert!(service.busy(), "the invocation is held by the process");
    function.kill_now().await;

    let failed = hung
        .await
        .unwrap()
        .expect_err("a killed process never answers");
    let message = format!("{failed:#}");
    assert!(message.contains("Runtime.ExitError"), "{message}");
    assert!(!service.busy());
    let answer = invoker.invoke(json!({"after": "restart"})).await.unwrap();
    assert_eq!(answer, json!({"echo": {"after": "restart"}}));
}

/// A bucket of the test's own in the real LocalStack, deleted at the end.
struct Bucket {
    url: String,
    http: reqwest::Client,
}

impl Bucket {
    async fn create() -> Self {
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:4566".to_owned());
        assert!(endpoint.starts_with("http://127.0.0.1"), "{endpoint}");
        let name = format!("chaos-proxy-{}", std::process::id());
        let bucket = Self {
            url: format!("{endpoint}/{name}"),
            http: reqwest::Client::new(),
        };
        let created = bucket.http.put(&bucket.url).send().await.unwrap();
        assert!(created.status().is_success(), "{:?}", created.text().await);
        bucket
    }

    fn name(&self) -> &str {
        self.url.rsplit('/').next().unwrap()
    }

    async fn delete(self, keys: &[&str]) {
        for key in keys {
            self.http
                .delete(format!("{}/{key}", self.url))
                .send()
                .await
                .unwrap();
        }
        self.http.delete(&self.url).send().await.unwrap();
    }
}

#[tokio::test]
async fn the_proxy_cuts_input_gets_mid_body_and_refuses_publishes_as_planned() {
    let bucket = Bucket::create().await;
    let upstream = bucket
        .url
        .trim_end_matches(bucket.name())
        .trim_end_matches('/')
        .to_owned();
    let proxy = S3Proxy::start(&upstream).await.unwrap();
    let input = "order_id,customer_id\n".to_owned() + &"1,2\n".repeat(50_000);
    let input_key = "incoming/orders.csv";
    let stored = bucket
        .http
        .put(format!("{}/{input_key}", bucket.url))
        .body(input.clone())
        .send()
        .await
        .unwrap();
    assert!(stored.status().is_success());
    let through_proxy = |key: &str| format!("{}/{}/{key}", proxy.url(), bucket.name());

    proxy.set_plan(FaultPlan {
        cut_input_gets: 1,
        cut_after_bytes: 1000,
        fail_publish_writes: 1,
        ..FaultPlan::default()
    });
    let cut = bucket
        .http
        .get(through_proxy(input_key))
        .send()
        .await
        .unwrap();
    assert_eq!(cut.status(), 200);
    assert!(
        cut.bytes().await.is_err(),
        "the body ends in an error, not short"
    );
    let whole = bucket
        .http
        .get(through_proxy(input_key))
        .send()
        .await
        .unwrap();
    assert_eq!(
        whole.text().await.unwrap(),
        input,
        "only one GET was to be cut"
    );

    let publish = |body: &'static str| {
        bucket
            .http
            .put(through_proxy("processed/processed_orders.csv"))
            .body(body)
            .send()
    };
    assert_eq!(publish("first").await.unwrap().status(), 503);
    assert!(publish("second").await.unwrap().status().is_success());
    let published = bucket
        .http
        .get(through_proxy("processed/processed_orders.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(published.text().await.unwrap(), "second");

    proxy.set_plan(FaultPlan {
        unreachable: true,
        ..FaultPlan::default()
    });
    let answered = match bucket.http.get(through_proxy(input_key)).send().await {
        Ok(response) => response.bytes().await.is_ok(),
        Err(_) => false,
    };
    assert!(!answered, "an unreachable S3 answers nothing whole");
    proxy.set_plan(FaultPlan::default());

    let counts = proxy.counts();
    assert_eq!(counts.dropped, 1);
    assert_eq!((counts.input_gets - 1, counts.cuts), (2, 1));
    assert_eq!((counts.publish_writes, counts.failed_writes), (2, 1));
    tokio::time::timeout(Duration::from_secs(1), proxy.wait_for_publish(1))
        .await
        .expect("two publishes were seen");
    bucket
        .delete(&[input_key, "processed/processed_orders.csv"])
        .await;
}
