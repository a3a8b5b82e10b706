//! Logging: structured JSON lines on stdout, which CloudWatch (and
//! `cargo lambda watch`) collect. The level comes from `RUST_LOG`, else
//! Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

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
    tracing_subscriber::registry().with(filter).with(json)
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
