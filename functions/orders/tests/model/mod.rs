//! A reference model of the ingest and sale rules ([`rules`]), sequences of
//! steps to run through it and through the real pipeline ([`steps`],
//! [`system`]), and [`run`], which does both and says where they first
//! part.

pub mod rules;
pub mod steps;
pub mod system;

use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use rules::{Model, View};
use steps::Step;
use system::{Delivered, LoadPath, System};

/// The property tests' settings: `PROPTEST_CASES` cases (else
/// `default_cases`). Each case is a few fresh pipelines, so shrinking stops
/// after half a minute, and a failing run still ends inside nextest's three
/// minutes with its minimal case. Failures are kept beside the test file
/// (`tests/<name>.proptest-regressions`) and replayed first.
pub fn proptest_config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        max_shrink_iters: 1024,
        max_shrink_time: 30_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Runs `steps` through the model and through `system`, comparing every
/// answer and, after every step, everything a reader sees. `Err` says
/// which step, on which path, saw what differ.
async fn run(path: LoadPath, system: &mut System, steps: &[Step]) -> Result<(), String> {
    let mut model = Model::default();
    for (number, step) in steps.iter().enumerate() {
        let at = |what: &str| format!("{path:?}, step {number} ({step:?}): {what}");
        match step {
            Step::Upload { key, file } => {
                let key = Step::key(*key);
                let (label, delivered) = system.upload(&key, file.render()).await;
                let expected = model.upload(label, &key, &file.input());
                same(
                    &at("the ingest's outcome"),
                    delivered,
                    Delivered::Outcome(expected),
                )?;
            }
            Step::Redeliver { upload } => {
                if system.uploads() == 0 {
                    continue;
                }
                let delivered = system.redeliver(upload % system.uploads()).await;
                same(&at("a redelivery"), delivered, Delivered::AlreadyIngested)?;
            }
            Step::Sell {
                customer_id,
                tickets,
            } => {
                let sold = system.sell(*customer_id, *tickets).await;
                same(&at("the sale"), sold, model.sell(*customer_id, *tickets))?;
            }
        }
        same_view(&at("what a reader sees"), system.view().await, model.view())?;
    }
    Ok(())
}

/// Runs `steps` on every load path, the paths side by side (each on a
/// fresh database and bucket); the first difference found is the answer.
/// The pipelines are dropped only once every path is done: dropping one
/// blocks the thread on its `DROP DATABASE`, which waits for every backend
/// of the cluster, and so for another path's open COPY, which needs this
/// thread to finish.
pub async fn run_on_every_path(steps: &[Step]) -> Result<(), String> {
    let mut systems = Vec::new();
    for path in system::LOAD_PATHS {
        systems.push((path, System::create(path).await));
    }
    let runs = systems
        .iter_mut()
        .map(|(path, system)| run(*path, system, steps));
    let outcome = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .collect();
    drop(systems);
    outcome
}

fn same<T: PartialEq + std::fmt::Debug>(what: &str, system: T, model: T) -> Result<(), String> {
    if system == model {
        Ok(())
    } else {
        Err(format!(
            "{what}: the pipeline has\n  {system:?}\nthe model\n  {model:?}"
        ))
    }
}

/// Compares a view part by part, so the message names the part that differs.
fn same_view(what: &str, system: View, model: View) -> Result<(), String> {
    same(&format!("{what}: orders"), system.orders, model.orders)?;
    same(
        &format!("{what}: barcodes"),
        system.barcodes,
        model.barcodes,
    )?;
    same(
        &format!("{what}: customer_tickets"),
        system.customer_tickets,
        model.customer_tickets,
    )?;
    same(
        &format!("{what}: GET /analytics/top-customers"),
        system.top_customers,
        model.top_customers,
    )?;
    same(
        &format!("{what}: GET /analytics/unused-barcodes"),
        system.unused_barcodes,
        model.unused_barcodes,
    )?;
    same(
        &format!("{what}: GET /analytics/summary"),
        system.summary,
        model.summary,
    )?;
    same(
        &format!("{what}: processed_orders.csv"),
        system.processed_orders_csv,
        model.processed_orders_csv,
    )
}
