//! No `RUST_LOG` setting puts a bearer token or a query parameter in the
//! log: an authenticated sale runs through the real Lambda runtime loop
//! (against a stand-in for the Lambda Runtime API on loopback) with the
//! functions' own subscriber capturing at `trace`.
//!
//! One test in its own binary: it sets the Lambda environment variables
//! the runtime reads.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use pipeline_api::state::ApiState;
use pipeline_test_support::{test_authenticator, test_token_all, LogCapture, TestPipeline};
use tokio::sync::mpsc;

/// Hands out one invocation, then keeps every later poll waiting; sends
/// what the function answered down `answers`.
#[derive(Clone)]
struct RuntimeApi {
    event: Arc<Mutex<Option<String>>>,
    answers: mpsc::UnboundedSender<(String, String)>,
}

async fn next_invocation(State(api): State<RuntimeApi>) -> (HeaderMap, String) {
    let Some(event) = api.event.lock().unwrap().take() else {
        return std::future::pending().await;
    };
    let mut headers = HeaderMap::new();
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    headers.insert(
        "lambda-runtime-aws-request-id",
        "invocation-1".parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        deadline.to_string().parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:orders"
            .parse()
            .unwrap(),
    );
    (headers, event)
}

async fn answer(
    State(api): State<RuntimeApi>,
    Path((id, outcome)): Path<(String, String)>,
    body: String,
) -> StatusCode {
    let _ = api.answers.send((format!("{id}/{outcome}"), body));
    StatusCode::ACCEPTED
}

/// The function-URL sale fixture, with `token` and `idempotency_key`.
fn sale_event(token: &str, idempotency_key: &str) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/function-url-post-order.json"
    );
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["headers"]["authorization"] = format!("Bearer {token}").into();
    event["headers"]["idempotency-key"] = idempotency_key.into();
    event.to_string()
}

#[tokio::test]
async fn a_trace_log_of_an_authenticated_sale_shows_no_token_and_no_query_parameter() {
    let pipeline = TestPipeline::with_sample_data(3).await;
    let token = test_token_all();
    // Sent to PostgreSQL as a statement parameter (the sale's idempotency
    // lookup), so tokio-postgres would log it at debug.
    let idempotency_key = "idempotency-5ecret-81f3";

    let (answers, mut answered) = mpsc::unbounded_channel();
    let runtime_api = RuntimeApi {
        event: Arc::new(Mutex::new(Some(sale_event(&token, idempotency_key)))),
        answers,
    };
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{id}/{outcome}",
            post(answer),
        )
        .with_state(runtime_api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    for (name, value) in [
        ("AWS_LAMBDA_RUNTIME_API", address.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", "orders".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1".to_owned()),
    ] {
        std::env::set_var(name, value);
    }

    let logs = LogCapture::default();
    let capture = logs.install("trace");
    let router =
        pipeline_api::orders::router(ApiState::new(pipeline.db.store(), test_authenticator()));
    // The production entry point: the Lambda runtime loop around the
    // router, stopped once it has answered.
    let (outcome, body) = tokio::select! {
        ended = pipeline_api::http::serve::run("orders", router) => {
            panic!("the runtime loop ended: {ended:?}")
        }
        answer = tokio::time::timeout(std::time::Duration::from_secs(60), answered.recv()) => answer
            .expect("the function answers its invocation")
            .expect("the runtime API stand-in is up"),
    };
    drop(capture);

    assert_eq!(outcome, "invocation-1/response", "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["statusCode"], 201, "{body}");
    let text = logs.text();
    // The capture works at verbose levels: the runtime client's debug
    // lines and our request line are there.
    assert!(text.contains(r#""level":"DEBUG""#), "{text}");
    assert!(text.contains(r#""route":"/orders""#), "{text}");
    let signature = token.rsplit('.').next().unwrap();
    for secret in [token.as_str(), signature, idempotency_key] {
        assert!(!text.contains(secret), "the log shows {secret:?}:\n{text}");
    }
}
