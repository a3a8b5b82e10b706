//! The cases that drive the HTTP API (the real `orders` and `analytics`
//! servers) while a large file loads: 1,000 concurrent sales (no barcode
//! sold twice, aggregates exact), and reads of every endpoint (no 5xx).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use datagen::splitmix::SplitMix64;
use serde_json::Value;

use crate::api_servers::ApiServers;
use crate::cases::{Chaos, Reference, RunOutcome};
use crate::state::{aggregate_drift, Snapshot};
use crate::world::World;

/// Concurrent sales fired while the large barcodes file loads.
pub const SALES: usize = 1000;
/// Concurrent readers of the API during the bulk load.
const READERS: usize = 8;
/// The large files' first order id: beyond the fault files' ids.
pub const LARGE_FIRST_ORDER_ID: u64 = 1_000_001;

/// How a batch of HTTP requests was answered.
#[derive(Default)]
struct Answers {
    /// "GET /orders/{id} 503" -> how many.
    by_status: BTreeMap<String, u64>,
    /// The first body of each 5xx kind, to show what it said.
    server_errors: BTreeMap<String, String>,
}

impl Answers {
    fn record(&mut self, what: &str, status: u16, body: &str) {
        let line = format!("{what} {status}");
        // 0: no answer at all (connection refused or reset).
        if status >= 500 || status == 0 {
            self.server_errors
                .entry(line.clone())
                .or_insert_with(|| body.chars().take(300).collect());
        }
        *self.by_status.entry(line).or_default() += 1;
    }

    fn merge(&mut self, other: Answers) {
        for (line, n) in other.by_status {
            *self.by_status.entry(line).or_default() += n;
        }
        for (line, body) in other.server_errors {
            self.server_errors.entry(line).or_insert(body);
        }
    }

    /// Answers to `what` with a status outside `expected`.
    fn unexpected(&self, what: &str, expected: &[u16]) -> Vec<String> {
        self.by_status
            .iter()
            .filter(|(line, _)| {
                line.strip_prefix(what)
                    .and_then(|status| status.trim().parse::<u16>().ok())
                    .is_some_and(|status| !expected.contains(&status))
            })
            .map(|(line, n)| format!("{n} x {line}, not one of {expected:?}"))
            .collect()
    }

    fn server_error_problems(&self) -> Vec<String> {
        self.server_errors
            .iter()
            .map(|(line, body)| {
                format!(
                    "{} x {line}: {body}",
                    self.by_status.get(line).unwrap_or(&0)
                )
            })
            .collect()
    }
}

impl Chaos {
    /// Loads the fault files, then the large pair; while the large barcodes
    /// file loads, fires [`SALES`] concurrent sales.
    pub async fn sales_during_load(&self, seed: u64, reference: &Reference) -> Result<RunOutcome> {
        let name = format!("chaos-sales-{seed:x}");
        self.in_world(&name, async |world| {
            self.sales_in(world, seed, reference).await
        })
        .await
    }

    async fn sales_in(
        &self,
        world: &World,
        seed: u64,
        reference: &Reference,
    ) -> Result<RunOutcome> {
        for file in self
            .files
            .iter()
            .take(2)
            .chain(self.large_files.iter().take(1))
        {
            let key = world.upload(file).await?;
            world.wait_settled(&key).await?;
        }
        let servers = ApiServers::start(&self.settings, world).await?;
        let invocations = world.lambda.invocations();
        let large = world.upload_version(&self.large_files[1]).await?;
        world.lambda.wait_for_invocation(invocations).await;
        let (answers, sold) = sell_concurrently(&servers, seed, || world.lambda.busy()).await;
        eprintln!(
            "chaos: {} of {SALES} sales answered while the large file was loading",
            sold.answered_during_load
        );
        let landed = if sold.answered_during_load * 2 >= SALES {
            "most sales answered during the load"
        } else {
            "most sales answered after the load"
        };
        world.wait_ingested(&large.key).await?;
        // A sale leaves processed_orders.csv stale until the next event: a
        // second delivery of the large file's notification republishes it.
        world.deliver_again(&large).await?;
        world.wait_settled(&large.key).await?;
        servers.stop().await;

        let snapshot = Snapshot::take(&world.owner, &world.s3, &world.name).await?;
        let difference = snapshot.difference_from(&reference.snapshot, true);
        let mut problems = difference.problems;
        problems.extend(aggregate_drift(&world.owner).await?);
        let doubled_sales = sold.sold_twice();
        if doubled_sales > 0 {
            problems.push(format!("{doubled_sales} barcode(s) sold in two sales"));
        }
        problems.extend(sold_as_answered(world, &sold).await?);
        // Sold, out of barcodes, or busy (a load holds the lock): nothing else.
        problems.extend(answers.unexpected("POST /orders", &[201, 409, 503]));
        let outcome = RunOutcome {
            rows_lost: difference.rows_lost,
            rows_doubled: difference.rows_doubled + doubled_sales,
            retries: world
                .lambda
                .invocations()
                .saturating_sub(reference.invocations()),
            problems,
            landed: vec![landed],
        };
        print_answers("sales", &answers);
        Ok(outcome)
    }

    /// Loads the large pair into an empty database (the bulk path) while
    /// [`READERS`] clients read every endpoint; no answer may be a 5xx.
    pub async fn api_during_load(&self, seed: u64, reference: &Reference) -> Result<RunOutcome> {
        let name = format!("chaos-api-{seed:x}");
        self.in_world(&name, async |world| {
            self.api_reads_in(world, seed, reference).await
        })
        .await
    }

    async fn api_reads_in(
        &self,
        world: &World,
        seed: u64,
        reference: &Reference,
    ) -> Result<RunOutcome> {
        let servers = Arc::new(ApiServers::start(&self.settings, world).await?);
        let stop = Arc::new(AtomicBool::new(false));
        // The readers stop however this ends, and with them the servers.
        let _stop_readers = StopOnDrop(stop.clone());
        let readers: Vec<_> = (0..READERS as u64)
            .map(|reader| {
                tokio::spawn(read_until(
                    servers.clone(),
                    stop.clone(),
                    self.large_orders,
                    seed.wrapping_mul(31).wrapping_add(reader),
                ))
            })
            .collect();
        for file in &self.large_files {
            let key = world.upload(file).await?;
            world.wait_settled(&key).await?;
        }
        stop.store(true, Ordering::Relaxed);
        let mut answers = Answers::default();
        for reader in readers {
            answers.merge(reader.await?);
        }
        if let Ok(servers) = Arc::try_unwrap(servers) {
            servers.stop().await;
        }
        let snapshot = Snapshot::take(&world.owner, &world.s3, &world.name).await?;
        let difference = snapshot.difference_from(&reference.snapshot, false);
        let mut problems = difference.problems;
        problems.extend(aggregate_drift(&world.owner).await?);
        problems.extend(answers.server_error_problems());
        let outcome = RunOutcome {
            rows_lost: difference.rows_lost,
            rows_doubled: difference.rows_doubled,
            retries: world
                .lambda
                .invocations()
                .saturating_sub(reference.invocations()),
            problems,
            landed: vec!["API read during the bulk load"],
        };
        print_answers("API reads", &answers);
        Ok(outcome)
    }
}

fn print_answers(what: &str, answers: &Answers) {
    let lines: Vec<String> = answers
        .by_status
        .iter()
        .map(|(line, n)| format!("{n} x {line}"))
        .collect();
    eprintln!("chaos: {what}: {}", lines.join(", "));
}

/// The barcodes each successful sale answered with.
#[derive(Default)]
struct Sold {
    /// barcode -> the sale orders that answered with it.
    orders_by_barcode: HashMap<String, Vec<i64>>,
    /// Sales (any answer) that came back while the load was running.
    answered_during_load: usize,
}

impl Sold {
    fn sold_twice(&self) -> u64 {
        self.orders_by_barcode
            .values()
            .map(|orders| orders.len().saturating_sub(1) as u64)
            .sum()
    }
}

/// Fires the sales at once; `loading` tells whether the load still runs.
async fn sell_concurrently(
    servers: &ApiServers,
    seed: u64,
    loading: impl Fn() -> bool + Copy,
) -> (Answers, Sold) {
    let client = reqwest::Client::new();
    let mut rng = SplitMix64::new(seed);
    let sales: Vec<_> = (0..SALES)
        .map(|i| {
            let request = client
                .post(format!("{}/orders", servers.orders))
                .bearer_auth(&servers.token)
                .header("idempotency-key", format!("chaos-{seed}-{i}"))
                .json(&serde_json::json!({
                    "customer_id": 1 + rng.below(2000),
                    "tickets": 1 + rng.below(3),
                }));
            async move {
                let (status, body) = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        (status, response.text().await.unwrap_or_default())
                    }
                    Err(error) => (0, error.to_string()),
                };
                (status, body, loading())
            }
        })
        .collect();
    let mut answers = Answers::default();
    let mut sold = Sold::default();
    for (status, body, during_load) in futures_util::future::join_all(sales).await {
        answers.record("POST /orders", status, &body);
        sold.answered_during_load += usize::from(during_load);
        if status != 201 {
            continue;
        }
        let order: Value = serde_json::from_str(&body).unwrap_or_default();
        let order_id = order["order_id"].as_i64().unwrap_or_default();
        for barcode in order["barcodes"].as_array().into_iter().flatten() {
            let code = barcode["barcode"].as_str().unwrap_or_default().to_owned();
            sold.orders_by_barcode
                .entry(code)
                .or_default()
                .push(order_id);
        }
    }
    (answers, sold)
}

/// The database agrees with the sales' answers: every barcode a sale
/// answered with belongs to that sale's order, and no other barcode was
/// sold by a sale.
async fn sold_as_answered(world: &World, sold: &Sold) -> Result<Vec<String>> {
    let client = world.owner.get().await?;
    let rows = client
        .query(
            "SELECT b.barcode, b.order_id FROM barcodes b WHERE b.sale_id IS NOT NULL",
            &[],
        )
        .await?;
    let stored: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut problems = Vec::new();
    let answered_not_stored = sold
        .orders_by_barcode
        .iter()
        .filter(|(code, orders)| stored.get(*code) != orders.first())
        .count();
    if answered_not_stored > 0 {
        problems.push(format!(
            "{answered_not_stored} barcode(s) answered as sold are not stored with that sale's order"
        ));
    }
    let stored_not_answered = stored
        .keys()
        .filter(|code| !sold.orders_by_barcode.contains_key(*code))
        .count();
    if stored_not_answered > 0 {
        problems.push(format!(
            "{stored_not_answered} barcode(s) sold in the database by no sale that answered 201"
        ));
    }
    Ok(problems)
}

/// Raises its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy)]
enum Server {
    Orders,
    Analytics,
}

/// What the readers read: every GET endpoint, as its line in the answers,
/// its server and its path (`{order}` and `{customer}`: random ids of the
/// large files).
const READS: [(&str, Server, &str); 10] = [
    ("GET /health", Server::Analytics, "/health"),
    (
        "GET /analytics/top-customers",
        Server::Analytics,
        "/analytics/top-customers?limit=5",
    ),
    (
        "GET /analytics/summary",
        Server::Analytics,
        "/analytics/summary",
    ),
    (
        "GET /analytics/unused-barcodes?limit=0",
        Server::Analytics,
        "/analytics/unused-barcodes?limit=0",
    ),
    (
        "GET /analytics/unused-barcodes?limit=100",
        Server::Analytics,
        "/analytics/unused-barcodes?limit=100",
    ),
    ("GET /ingestions", Server::Analytics, "/ingestions"),
    ("GET /orders/{id}", Server::Orders, "/orders/{order}"),
    ("GET /orders?limit=100", Server::Orders, "/orders?limit=100"),
    (
        "GET /customers/{id}",
        Server::Orders,
        "/customers/{customer}",
    ),
    (
        "GET /customers/{id}/orders",
        Server::Orders,
        "/customers/{customer}/orders",
    ),
];

/// Reads random endpoints until `stop`; returns how they answered.
async fn read_until(
    servers: Arc<ApiServers>,
    stop: Arc<AtomicBool>,
    orders: u64,
    seed: u64,
) -> Answers {
    let client = reqwest::Client::new();
    let mut rng = SplitMix64::new(seed);
    let mut answers = Answers::default();
    while !stop.load(Ordering::Relaxed) {
        let order = LARGE_FIRST_ORDER_ID + rng.below(orders);
        let customer = 1 + rng.below((orders / 10).max(1));
        let (what, server, path) = READS[rng.below(READS.len() as u64) as usize];
        let base = match server {
            Server::Orders => &servers.orders,
            Server::Analytics => &servers.analytics,
        };
        let path = path
            .replace("{order}", &order.to_string())
            .replace("{customer}", &customer.to_string());
        let url = format!("{base}{path}");
        match client.get(url).bearer_auth(&servers.token).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.text().await.unwrap_or_default();
                answers.record(what, status, &body);
            }
            Err(error) => answers.record(what, 0, &error.to_string()),
        }
    }
    answers
}
