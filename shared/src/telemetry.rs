//! Logging: structured JSON lines on stdout, which CloudWatch (and
//! `cargo lambda watch`) collect. The level comes from `RUST_LOG`, else
//! Lambda's `AWS_LAMBDA_LOG_LEVEL`, else `info`.

use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global JSON subscriber. Call once, first thing in `main`.
pub fn init() {
    let json = fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true);
    // `try_init` so tests and repeated calls do not panic.
    let _ = tracing_subscriber::registry()
        .with(filter())
        .with(json)
        .try_init();
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

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .map_err(|_| ())
                .and_then(|level| EnvFilter::try_new(level.to_lowercase()).map_err(|_| ()))
        })
        // refinery logs every migration step at info; its summary is enough.
        .unwrap_or_else(|_| EnvFilter::new("info,refinery_core=warn"))
}
