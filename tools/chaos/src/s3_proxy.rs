//! An HTTP proxy between the function and LocalStack (the function's
//! `AWS_ENDPOINT_URL` points here) that injects real network faults on cue:
//! it cuts the body of an input's GET after N bytes (the connection closes
//! mid-stream, as a reset would), answers 503 to the writes of
//! processed_orders.csv, or holds them (so the function can be killed
//! mid-publish, after its commit), or drops every connection for a while
//! (S3 unreachable). Everything else passes through untouched.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use order_pipeline::config::{INCOMING_PREFIX, PROCESSED_ORDERS_KEY};
use tokio::sync::Notify;

/// How long a cut body stalls before its connection drops.
const CUT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
/// Largest request body forwarded (a multipart part is 8 MiB).
const MAX_REQUEST_BYTES: usize = 64 << 20;

/// Faults to inject, set by a case before the request they aim at.
#[derive(Debug, Default, Clone, Copy)]
pub struct FaultPlan {
    /// Cut this many of the next input GETs...
    pub cut_input_gets: usize,
    /// ...after this many body bytes.
    pub cut_after_bytes: u64,
    /// Answer 503 to this many of the next writes of processed_orders.csv.
    pub fail_publish_writes: usize,
    /// Hold every write of processed_orders.csv unanswered (never forwarded).
    pub hold_publish_writes: bool,
    /// Drop every request's connection, as an S3 that went away does.
    pub unreachable: bool,
}

/// What the proxy saw and did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProxyCounts {
    pub input_gets: u64,
    pub publish_writes: u64,
    pub cuts: u64,
    pub failed_writes: u64,
    /// Requests whose connection was dropped while unreachable.
    pub dropped: u64,
}

#[derive(Default)]
struct Faults {
    plan: FaultPlan,
    counts: ProxyCounts,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    faults: Mutex<Faults>,
    /// Woken when a write of processed_orders.csv arrives.
    publish_seen: Notify,
}

/// The proxy, serving until dropped.
pub struct S3Proxy {
    shared: Arc<Shared>,
    url: String,
    server: tokio::task::JoinHandle<()>,
}

impl S3Proxy {
    /// Proxies to `upstream` (LocalStack's URL).
    pub async fn start(upstream: &str) -> Result<Self> {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .build()
                .context("proxy HTTP client")?,
            faults: Mutex::new(Faults::default()),
            publish_seen: Notify::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let router = Router::new().fallback(forward).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            shared,
            url,
            server,
        })
    }

    /// The URL to give the function as `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn set_plan(&self, plan: FaultPlan) {
        self.shared.faults.lock().unwrap().plan = plan;
    }

    pub fn counts(&self) -> ProxyCounts {
        self.shared.faults.lock().unwrap().counts
    }

    /// Waits until a write of processed_orders.csv arrives after `seen` of them.
    pub async fn wait_for_publish(&self, seen: u64) {
        loop {
            let notified = self.shared.publish_seen.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.counts().publish_writes > seen {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for S3Proxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Which request this is, as far as faults go (path-style S3 URLs:
/// `/<bucket>/<key>`).
#[derive(Debug, PartialEq, Eq)]
enum Target {
    InputGet,
    PublishWrite,
    Other,
}

fn classify(method: &Method, path: &str) -> Target {
    let key = path
        .trim_start_matches('/')
        .split_once('/')
        .map_or("", |(_, key)| key);
    if method == Method::GET && key.starts_with(INCOMING_PREFIX) {
        Target::InputGet
    } else if (method == Method::PUT || method == Method::POST) && key == PROCESSED_ORDERS_KEY {
        Target::PublishWrite
    } else {
        Target::Other
    }
}

/// What to do to one request, decided (and counted) as it arrives.
enum Action {
    Pass,
    Cut(u64),
    Fail,
    Hold,
    Drop,
}

fn decide(shared: &Shared, target: &Target) -> Action {
    let mut faults = shared.faults.lock().unwrap();
    let Faults { plan, counts } = &mut *faults;
    match target {
        Target::InputGet => counts.input_gets += 1,
        Target::PublishWrite => {
            counts.publish_writes += 1;
            shared.publish_seen.notify_waiters();
        }
        Target::Other => {}
    }
    if plan.unreachable {
        counts.dropped += 1;
        return Action::Drop;
    }
    match target {
        Target::InputGet => {
            if plan.cut_input_gets == 0 {
                return Action::Pass;
            }
            plan.cut_input_gets -= 1;
            counts.cuts += 1;
            Action::Cut(plan.cut_after_bytes)
        }
        Target::PublishWrite => {
            if plan.hold_publish_writes {
                Action::Hold
            } else if plan.fail_publish_writes > 0 {
                plan.fail_publish_writes -= 1;
                counts.failed_writes += 1;
                Action::Fail
            } else {
                Action::Pass
            }
        }
        Target::Other => Action::Pass,
    }
}

/// Hop-by-hop headers and the ones the client recomputes.
fn passes(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host" | "connection" | "keep-alive" | "transfer-encoding" | "expect" | "content-length"
    )
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let target = classify(&parts.method, parts.uri.path());
    let action = decide(&shared, &target);
    match action {
        Action::Hold => return std::future::pending().await,
        Action::Fail => return service_unavailable(),
        Action::Drop => return dropped_connection(),
        Action::Pass | Action::Cut(_) => {}
    }
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(body) => body,
        Err(error) => return bad_gateway(format!("reading the request body: {error}")),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = shared
        .client
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in parts.headers.iter().filter(|(name, _)| passes(name)) {
        upstream = upstream.header(name, value);
    }
    let response = match upstream.send().await {
        Ok(response) => response,
        Err(error) => return bad_gateway(format!("LocalStack: {error}")),
    };
    let mut answer = Response::builder().status(response.status());
    for (name, value) in response.headers() {
        if !matches!(
            name.as_str(),
            "connection" | "keep-alive" | "transfer-encoding"
        ) {
            answer = answer.header(name, value);
        }
    }
    let limit = match action {
        Action::Cut(after) if response.status().is_success() => Some(after),
        _ => None,
    };
    answer
        .body(Body::from_stream(body_stream(response, limit)))
        .unwrap_or_else(|error| bad_gateway(error.to_string()))
}

/// The upstream body, ending in an error after `limit` bytes when set: with
/// the Content-Length already sent, the client sees the connection drop
/// mid-body.
fn body_stream(
    response: reqwest::Response,
    limit: Option<u64>,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> {
    let remaining = limit.unwrap_or(u64::MAX);
    futures_util::stream::unfold(
        (Some(response), remaining),
        |(response, remaining)| async move {
            let mut response = response?;
            if remaining == 0 {
                // A pause first, so the bytes before the cut reach the client
                // (the server flushes while the body is pending).
                tokio::time::sleep(CUT_PAUSE).await;
                let cut = std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "chaos: body cut mid-stream",
                );
                return Some((Err(cut), (None, 0)));
            }
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let keep = (chunk.len() as u64).min(remaining);
                    let chunk = chunk.slice(..keep as usize);
                    Some((Ok(chunk), (Some(response), remaining - keep)))
                }
                Ok(None) => None,
                Err(error) => Some((Err(std::io::Error::other(error)), (None, 0))),
            }
        },
    )
}

/// An answer that never comes: the connection closes before a byte of it
/// is sent.
fn dropped_connection() -> Response {
    let reset = futures_util::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "chaos: S3 unreachable",
        ))
    });
    Response::new(Body::from_stream(reset))
}

fn service_unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("content-type", "application/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>ServiceUnavailable</Code>\
         <Message>chaos: write of processed_orders.csv refused</Message></Error>",
    )
        .into_response()
}

fn bad_gateway(message: String) -> Response {
    tracing::warn!(%message, "proxy could not forward");
    (StatusCode::BAD_GATEWAY, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_input_gets_and_publish_writes_from_everything_else() {
        assert_eq!(
            classify(&Method::GET, "/b/incoming/orders.csv"),
            Target::InputGet
        );
        assert_eq!(
            classify(&Method::PUT, "/b/processed/processed_orders.csv"),
            Target::PublishWrite
        );
        assert_eq!(
            classify(&Method::POST, "/b/processed/processed_orders.csv"),
            Target::PublishWrite
        );
        assert_eq!(
            classify(&Method::HEAD, "/b/incoming/orders.csv"),
            Target::Other
        );
        assert_eq!(
            classify(&Method::PUT, "/b/reports/incoming/orders.csv/v.json"),
            Target::Other
        );
    }
}
