//! Plays the Lambda service for one function, so that a fault can hit the
//! real function process at an exact moment: the Invoke API that
//! `pipeline-local forward` calls, and the Runtime API that the real `ingest`
//! binary (spawned here, `AWS_LAMBDA_RUNTIME_API`) polls for its events.
//! `cargo lambda watch` would also run the binary, but it owns the process:
//! it cannot be told to kill -9 it mid-invocation, nor say when an event was
//! handed to it.
//!
//! Each process gets a runtime endpoint of its own (a "generation"): when a
//! process dies, its endpoint stops handing out events, the invocation it
//! held fails as Lambda fails it (`Runtime.ExitError`, HTTP 200 with
//! `X-Amz-Function-Error`), and a fresh process (a cold start) takes the
//! queued ones.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// The deadline each invocation gets, as the template's ingest timeout.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(300);
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:ingest";

/// What the function answered.
enum Outcome {
    Response(Bytes),
    Error(Bytes),
}

struct Invocation {
    event: Bytes,
    answer: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Queue {
    /// The generation whose runtime endpoint may take events.
    generation: u64,
    next_request_id: u64,
    pending: VecDeque<Invocation>,
    /// Handed to the current process, not answered yet. Dropping a sender
    /// fails its invocation with `Runtime.ExitError`.
    in_flight: HashMap<String, oneshot::Sender<Outcome>>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
    /// Events handed to a function process so far.
    handed_out: watch::Sender<u64>,
}

impl Shared {
    /// A new process generation: the old endpoint hands out nothing more,
    /// and whatever the old process held fails.
    fn next_generation(&self) -> u64 {
        let mut queue = self.queue.lock().unwrap();
        queue.generation += 1;
        queue.in_flight.clear();
        self.wake.notify_waiters();
        queue.generation
    }
}

/// The Invoke API, serving until dropped.
pub struct LambdaService {
    shared: Arc<Shared>,
    invoke_url: String,
    server: tokio::task::JoinHandle<()>,
}

impl LambdaService {
    pub async fn start() -> Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            handed_out: watch::channel(0).0,
        });
        let router = Router::new()
            .route("/2015-03-31/functions/{function}/invocations", post(invoke))
            .with_state(shared.clone());
        let (addr, server) = serve(router).await?;
        Ok(Self {
            shared,
            invoke_url: format!("http://{addr}"),
            server,
        })
    }

    /// The base URL for `pipeline-local forward --invoke-url`.
    pub fn invoke_url(&self) -> &str {
        &self.invoke_url
    }

    /// Events handed to a function process so far (first deliveries and
    /// retries alike).
    pub fn invocations(&self) -> u64 {
        *self.shared.handed_out.borrow()
    }

    /// True while a function process holds an invocation it has not answered.
    pub fn busy(&self) -> bool {
        !self.shared.queue.lock().unwrap().in_flight.is_empty()
    }

    /// Waits until no invocation is held by a function process.
    pub async fn wait_idle(&self) {
        while self.busy() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Waits until more than `seen` events have been handed out.
    pub async fn wait_for_invocation(&self, seen: u64) {
        let mut handed_out = self.shared.handed_out.subscribe();
        let _ = handed_out.wait_for(|n| *n > seen).await;
    }

    /// Spawns `binary` as the function, with `env`, and keeps one running:
    /// a process that exits (or is killed) is replaced by a fresh one.
    pub fn run_function(
        &self,
        binary: PathBuf,
        env: Vec<(String, String)>,
        log: PathBuf,
    ) -> FunctionProcess {
        let (kill, kills) = mpsc::channel(1);
        let (exits_tx, exits) = watch::channel(0);
        let supervisor = tokio::spawn(supervise(
            self.shared.clone(),
            binary,
            env,
            log,
            kills,
            exits_tx,
        ));
        FunctionProcess {
            kill,
            exits,
            supervisor,
        }
    }
}

impl Drop for LambdaService {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The running function process; dropping it kills the process for good.
pub struct FunctionProcess {
    kill: mpsc::Sender<()>,
    exits: watch::Receiver<u64>,
    supervisor: tokio::task::JoinHandle<()>,
}

impl FunctionProcess {
    /// kill -9 of the current process; returns once it is dead (a fresh one
    /// is being started).
    pub async fn kill_now(&mut self) {
        let before = *self.exits.borrow_and_update();
        let _ = self.kill.send(()).await;
        let _ = self.exits.wait_for(|n| *n > before).await;
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        // The supervisor's child is spawned with kill_on_drop.
        self.supervisor.abort();
    }
}

async fn supervise(
    shared: Arc<Shared>,
    binary: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    mut kills: mpsc::Receiver<()>,
    exits: watch::Sender<u64>,
) {
    loop {
        let generation = shared.next_generation();
        let runtime = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_event))
            .route(
                "/2018-06-01/runtime/invocation/{request_id}/{kind}",
                post(respond),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state((shared.clone(), generation));
        let (addr, server) = match serve(runtime).await {
            Ok(served) => served,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "runtime API did not start");
                return;
            }
        };
        let spawned = spawn_function(&binary, &env, &log, addr);
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "function did not start");
                server.abort();
                return;
            }
        };
        tokio::select! {
            status = child.wait() => tracing::warn!(?status, "function process exited by itself"),
            _ = kills.recv() => {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
        server.abort();
        // The dead process's invocation fails now, before anything restarts.
        shared.next_generation();
        exits.send_modify(|n| *n += 1);
    }
}

fn spawn_function(
    binary: &PathBuf,
    env: &[(String, String)],
    log: &PathBuf,
    runtime_api: SocketAddr,
) -> Result<tokio::process::Child> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    tokio::process::Command::new(binary)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "ingest")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ingest")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "chaos")
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

async fn serve(router: Router) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding a loopback port")?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((addr, server))
}

/// The Invoke API: queues the event and answers with the function's answer.
async fn invoke(State(shared): State<Arc<Shared>>, event: Bytes) -> Response {
    let (answer, answered) = oneshot::channel();
    shared
        .queue
        .lock()
        .unwrap()
        .pending
        .push_back(Invocation { event, answer });
    shared.wake.notify_waiters();
    let function_error = |body: Bytes| {
        let mut response = (StatusCode::OK, body).into_response();
        response.headers_mut().insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
        response
    };
    match answered.await {
        Ok(Outcome::Response(body)) => (StatusCode::OK, body).into_response(),
        Ok(Outcome::Error(body)) => function_error(body),
        Err(_) => function_error(Bytes::from_static(
            br#"{"errorType":"Runtime.ExitError","errorMessage":"the function process exited before answering"}"#,
        )),
    }
}

type RuntimeState = State<(Arc<Shared>, u64)>;

/// GET /runtime/invocation/next: waits for an event, for this generation
/// only (a dead process's endpoint answers 410 and hands out nothing).
async fn next_event(State((shared, generation)): RuntimeState) -> Response {
    loop {
        let wake = shared.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        {
            let mut queue = shared.queue.lock().unwrap();
            if queue.generation != generation {
                return StatusCode::GONE.into_response();
            }
            if let Some(invocation) = queue.pending.pop_front() {
                queue.next_request_id += 1;
                let request_id = format!("chaos-{}", queue.next_request_id);
                queue
                    .in_flight
                    .insert(request_id.clone(), invocation.answer);
                shared.handed_out.send_modify(|n| *n += 1);
                return event_response(&request_id, invocation.event);
            }
        }
        wake.await;
    }
}

fn event_response(request_id: &str, event: Bytes) -> Response {
    let deadline = SystemTime::now() + INVOCATION_TIMEOUT;
    let deadline_ms = deadline
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", request_id.to_owned());
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        FUNCTION_ARN.to_owned(),
    );
    set(
        "lambda-runtime-trace-id",
        format!("Root=1-00000000-{request_id}"),
    );
    set("content-type", "application/json".to_owned());
    (StatusCode::OK, headers, event).into_response()
}

fn answer(shared: &Shared, request_id: &str, outcome: Outcome) -> StatusCode {
    let sender = shared.queue.lock().unwrap().in_flight.remove(request_id);
    match sender {
        Some(sender) => {
            let _ = sender.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

/// POST /runtime/invocation/{id}/response or .../error.
async fn respond(
    State((shared, _)): RuntimeState,
    Path((request_id, kind)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    match kind.as_str() {
        "response" => answer(&shared, &request_id, Outcome::Response(body)),
        "error" => answer(&shared, &request_id, Outcome::Error(body)),
        _ => StatusCode::NOT_FOUND,
    }
}

async fn init_error(body: Bytes) -> StatusCode {
    tracing::error!(error = %String::from_utf8_lossy(&body), "the function failed its cold start");
    StatusCode::ACCEPTED
}
