//! Logging: structured JSON lines on stdout, which CloudWatch (and
//! `cargo lambda watch`) collect. The level comes from `RUST_LOG`, else
//! Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`; whatever it says, the
//! crates in [`LEVEL_CAPS`] never log above their cap.

use tracing::level_filters::LevelFilter;
use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// The most verbose level each of these crates may log at, whatever
/// `RUST_LOG` asks: one level further they log secrets. Targets match by
/// prefix (`aws_smithy` covers `aws_smithy_runtime`), and this filter is
/// separate from `RUST_LOG`'s, so no directive there (not even a more
/// specific `tokio_postgres::query=debug`) lifts a cap.
pub const LEVEL_CAPS: [(&str, LevelFilter); 13] = [
    // trace: the raw invocation event, i.e. every request header
    // (Authorization) and body; and the response's headers.
    ("lambda_runtime", LevelFilter::DEBUG),
    ("lambda_http", LevelFilter::DEBUG),
    // debug: every statement's parameters (idempotency keys, any value a
    // query carries) and the text of simple queries.
    ("tokio_postgres", LevelFilter::INFO),
    // trace: whole requests (signed headers, the session token) and
    // response bodies (the database secret from Secrets Manager).
    ("aws_smithy", LevelFilter::DEBUG),
    ("aws_sdk", LevelFilter::DEBUG),
    ("aws_sigv4", LevelFilter::DEBUG),
    ("aws_runtime", LevelFilter::DEBUG),
    ("aws_config", LevelFilter::DEBUG),
    // trace: handshake messages and session tickets.
    ("rustls", LevelFilter::DEBUG),
    // HTTP clients and servers under the runtime and the SDK: frames and
    // headers at trace.
    ("hyper", LevelFilter::DEBUG),
    ("h2", LevelFilter::DEBUG),
    // debug: redirect targets (presigned URLs).
    ("reqwest", LevelFilter::INFO),
    ("tower_http", LevelFilter::DEBUG),
];

/// The caps as a filter: anything not listed passes through to `RUST_LOG`'s.
fn level_caps() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(LEVEL_CAPS)
}

/// Installs the global JSON subscriber. Call once, first thing in `main`.
pub fn init() {
    let filter = filter(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
    );
    // `try_init` so tests and repeated calls do not panic.
    let _ = subscriber(filter, std::io::stdout).try_init();
}

/// The functions' subscriber writing to `writer`: what [`init`] installs,
/// and what tests capture.
pub fn subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let json = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_writer(writer);
    tracing_subscriber::registry()
        .with(filter)
        .with(level_caps())
        .with(json)
}

/// [`tokio::task::spawn_blocking`] that keeps the caller's span and
/// subscriber on the blocking thread, so that what it logs names the work it
/// does (zero2prod's `spawn_blocking_with_tracing`; the subscriber too, for
/// a thread-local one such as a test's).
pub fn spawn_blocking_with_tracing<F, R>(work: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, || span.in_scope(work))
    })
}

/// For command-line tools run by people: compact text on stderr.
///
/// `default_level` applies unless `RUST_LOG` says otherwise.
pub fn init_for_cli(default_level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},refinery_core=warn")));
    let text = fmt::layer()
        .compact()
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(level_caps())
        .with(text)
        .try_init();
}

/// The functions' filter from the values of `RUST_LOG` and
/// `AWS_LAMBDA_LOG_LEVEL` (either may be unset or invalid).
pub fn filter(rust_log: Option<&str>, lambda_log_level: Option<&str>) -> EnvFilter {
    rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .or_else(|| {
            lambda_log_level.and_then(|level| EnvFilter::try_new(level.to_lowercase()).ok())
        })
        // refinery logs every migration step at info; its summary is enough.
        .unwrap_or_else(|| EnvFilter::new("info,refinery_core=warn"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cap_stops_the_level_past_it() {
        let caps = level_caps();
        for (target, cap) in LEVEL_CAPS {
            assert!(cap < LevelFilter::TRACE, "{target} is capped");
            let sub_target = format!("{target}::some::module");
            assert!(caps.would_enable(&sub_target, &cap.into_level().unwrap()));
            let past = if cap == LevelFilter::INFO {
                tracing::Level::DEBUG
            } else {
                tracing::Level::TRACE
            };
            assert!(!caps.would_enable(&sub_target, &past), "{target} at {past}");
        }
    }
}
