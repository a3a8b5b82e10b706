//! Property tests against a reference model: generated sequences of files
//! (valid and hostile rows, repeats, either kind first, re-deliveries, new
//! versions of a key) and sales in between run through the real ingest
//! into real PostgreSQL and LocalStack, on every load path, and after every
//! step the tables, the aggregates, the analytics API and
//! processed_orders.csv must equal the model's.
//!
//! `make test` runs a few tens of cases; `PROPTEST_CASES=1000` runs more.
//! A failure proptest finds is kept in `proptest-regressions/` (replayed
//! first on every run) and written down below as a named case.

mod model;

use model::steps;
use proptest::prelude::*;

/// Cases when `PROPTEST_CASES` does not say: each runs its steps on three
/// fresh pipelines side by side, one to two seconds on two busy cores.
const DEFAULT_CASES: u32 = 20;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        // Each shrink step is another three pipelines: half a minute of
        // them, so that a failing run still ends inside nextest's three
        // minutes with its minimal case.
        max_shrink_iters: 1024,
        max_shrink_time: 30_000,
        // Beside this file: tests/model_properties.proptest-regressions.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_pipeline_equals_the_model_on_every_load_path(steps in steps::steps()) {
        if let Err(difference) = block_on(model::run_on_every_path(&steps)) {
            return Err(TestCaseError::fail(difference));
        }
    }
}
