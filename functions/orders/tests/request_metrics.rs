//! The API's latency metric as CloudWatch reads it: one EMF histogram per
//! route pattern and status (never per path: ids would make a metric per
//! order). One test in this binary: it installs the process's one metrics
//! recorder.

use pipeline_api::state::ApiState;
use pipeline_test_support::{get, send, test_authenticator, test_token_all, TestPipeline};
use serde_json::Value;

#[tokio::test]
async fn requests_are_timed_by_route_and_status() {
    let collector = order_pipeline::metrics::builder("orders")
        .init()
        .expect("the one recorder of this test binary");
    order_pipeline::metrics::describe();
    let pipeline = TestPipeline::with_sample_data(0).await;
    let app =
        pipeline_api::orders::router(ApiState::new(pipeline.db.store(), test_authenticator()));
    let token = test_token_all();
    for path in ["/orders/1", "/orders/2", "/orders/424242", "/no/such/route"] {
        send(&app, get(path, Some(&token))).await;
    }
    let mut written = Vec::new();
    collector.flush(&mut written).expect("flushed");
    let text = String::from_utf8(written).unwrap();
    let timed: Vec<(String, String, usize, String)> = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|d| d["RequestMilliseconds"].is_array())
        .map(|d| {
            let unit = d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"].to_string();
            (
                d["Route"].as_str().unwrap().to_owned(),
                d["Status"].as_str().unwrap().to_owned(),
                d["RequestMilliseconds"].as_array().unwrap().len(),
                unit,
            )
        })
        .collect();
    let ms = "\"Milliseconds\"".to_owned();
    for expected in [
        (
            "/orders/{order_id}".to_owned(),
            "200".to_owned(),
            2,
            ms.clone(),
        ),
        (
            "/orders/{order_id}".to_owned(),
            "404".to_owned(),
            1,
            ms.clone(),
        ),
        ("unmatched".to_owned(), "404".to_owned(), 1, ms.clone()),
    ] {
        assert!(
            timed.contains(&expected),
            "{expected:?} not in {timed:?}\n{text}"
        );
    }
    assert!(
        text.contains(r#""Dimensions":[["Function","Route","Status"]]"#),
        "{text}"
    );
}
