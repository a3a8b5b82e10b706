//! The fault cases. Every run loads the same four files one after the other
//! (a first orders load, a first barcodes load, then an increment of each:
//! both of the ingest's paths) into a world of its own, with one fault aimed
//! at one file chosen by the run's seed, and ends compared with a clean run
//! of the same files.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use datagen::splitmix::SplitMix64;

use crate::postgres_cluster::PostgresCluster;
use crate::s3_proxy::FaultPlan;
use crate::state::{aggregate_drift, Snapshot};
use crate::world::{Settings, World};

/// The faults, in the order the table lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 of the ingest process at a random moment of a load.
    KillDuringLoad,
    /// kill -9 of the ingest process while it publishes processed_orders.csv.
    KillDuringPublish,
    /// PostgreSQL stopped (immediate mode) at a random moment of a load.
    PostgresStopped,
    /// The GET of an input cut after a random number of bytes.
    InputGetCut,
    /// The writes of processed_orders.csv answered 503 after the commit.
    PublishWriteFails,
    /// Every S3 connection of the function dropped for 1-5 s mid-load (what
    /// a LocalStack restart does to it, without the restart's loss of every
    /// bucket and queue: the community edition keeps no state across one).
    S3Unreachable,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::KillDuringLoad,
        Fault::KillDuringPublish,
        Fault::PostgresStopped,
        Fault::InputGetCut,
        Fault::PublishWriteFails,
        Fault::S3Unreachable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillDuringLoad => "kill-during-load",
            Fault::KillDuringPublish => "kill-during-publish",
            Fault::PostgresStopped => "postgres-stopped",
            Fault::InputGetCut => "s3-get-cut",
            Fault::PublishWriteFails => "s3-put-fails",
            Fault::S3Unreachable => "s3-unreachable",
        }
    }
}

impl Reference {
    /// Invocations the clean run took (one per file, and the s3:TestEvent).
    pub fn invocations(&self) -> u64 {
        self.invocations
    }
}

/// What a clean run of the files produced and how it went, per file.
pub struct Reference {
    pub snapshot: Snapshot,
    files: Vec<CleanFile>,
    invocations: u64,
    input_gets: u64,
    publish_writes: u64,
}

struct CleanFile {
    /// From the event handed to the function to its first write of
    /// processed_orders.csv (or to settling, when it published nothing).
    load: Duration,
    published: bool,
    /// Orders and barcodes stored once the file settled.
    rows_after: (i64, i64),
}

/// One run's outcome.
#[derive(Debug, Default)]
pub struct RunOutcome {
    pub rows_lost: u64,
    pub rows_doubled: u64,
    /// Invocations and S3 requests beyond the clean run's.
    pub retries: u64,
    pub problems: Vec<String>,
    /// Where the fault landed ("killed mid-load", "dead-lettered, redriven").
    pub landed: Vec<&'static str>,
}

pub struct Chaos {
    pub settings: Settings,
    pub cluster: PostgresCluster,
    /// The fault cases' files, in load order.
    pub files: Vec<PathBuf>,
    /// A large orders file and its barcodes file (order ids beyond `files`').
    pub large_files: Vec<PathBuf>,
    /// Orders in the large orders file.
    pub large_orders: u64,
}

impl Chaos {
    /// Loads `files` in order with no fault, into a fresh world named `name`.
    pub async fn clean_run(&self, name: &str, files: &[PathBuf]) -> Result<Reference> {
        self.in_world(name, async |world| clean_run_in(world, files).await)
            .await
    }

    /// Runs `drive` in a fresh world named `name`, then tears the world
    /// down whatever `drive` came to.
    pub async fn in_world<T>(
        &self,
        name: &str,
        drive: impl AsyncFnOnce(&mut World) -> Result<T>,
    ) -> Result<T> {
        let mut world = World::create(&self.settings, &self.cluster, name).await?;
        let driven = drive(&mut world).await;
        let torn_down = world.tear_down().await;
        let driven = driven?;
        torn_down.with_context(|| format!("tearing down {name}"))?;
        Ok(driven)
    }

    /// One run of `fault`, driven by `seed`.
    pub async fn run(&self, fault: Fault, seed: u64, reference: &Reference) -> Result<RunOutcome> {
        let name = format!("chaos-{}-{seed:x}", fault.name());
        self.in_world(&name, async |world| {
            self.run_in(world, fault, seed, reference).await
        })
        .await
    }

    async fn run_in(
        &self,
        world: &mut World,
        fault: Fault,
        seed: u64,
        reference: &Reference,
    ) -> Result<RunOutcome> {
        let mut rng = SplitMix64::new(seed);
        let target = pick_target(fault, &mut rng, reference);
        let mut problems = Vec::new();
        let mut landed = Vec::new();
        for (index, file) in self.files.iter().enumerate() {
            if index == target {
                let injected = self
                    .inject(fault, world, &mut rng, reference, index, file)
                    .await
                    .with_context(|| format!("{} on {}", fault.name(), file.display()))?;
                problems.extend(injected.problems);
                landed.push(injected.landed);
            } else {
                let key = world.upload(file).await?;
                world.wait_settled(&key).await?;
            }
        }
        let snapshot = Snapshot::take(&world.owner, &world.s3, &world.name).await?;
        let difference = snapshot.difference_from(&reference.snapshot, false);
        problems.extend(difference.problems);
        problems.extend(aggregate_drift(&world.owner).await?);
        let counts = world.proxy.counts();
        let retries = world
            .lambda
            .invocations()
            .saturating_sub(reference.invocations)
            + counts.input_gets.saturating_sub(reference.input_gets)
            + counts
                .publish_writes
                .saturating_sub(reference.publish_writes);
        Ok(RunOutcome {
            rows_lost: difference.rows_lost,
            rows_doubled: difference.rows_doubled,
            retries,
            problems,
            landed,
        })
    }

    /// Loads file `index` with the fault; returns what the fault's own
    /// checks found (all or nothing, the fault really happened).
    async fn inject(
        &self,
        fault: Fault,
        world: &mut World,
        rng: &mut SplitMix64,
        reference: &Reference,
        index: usize,
        file: &std::path::Path,
    ) -> Result<Injected> {
        let publishes = world.proxy.counts().publish_writes;
        let mut problems = Vec::new();
        let landed;
        let key = match fault {
            Fault::KillDuringLoad => {
                let key = upload_and_reach_mid_load(world, rng, reference, index, file).await?;
                landed = if !world.lambda.busy() {
                    "killed after the invocation ended"
                } else if world.proxy.counts().publish_writes > publishes {
                    "killed in the publish, after the commit"
                } else {
                    "killed mid-load"
                };
                world.function.kill_now().await;
                problems.extend(all_or_nothing(world, reference, index, &key).await?);
                key
            }
            Fault::KillDuringPublish => {
                world.proxy.set_plan(FaultPlan {
                    hold_publish_writes: true,
                    ..FaultPlan::default()
                });
                let key = world.upload(file).await?;
                world.proxy.wait_for_publish(publishes).await;
                tokio::time::sleep(Duration::from_millis(rng.below(50))).await;
                world.function.kill_now().await;
                landed = "killed mid-publish";
                world.proxy.set_plan(FaultPlan::default());
                problems.extend(all_or_nothing(world, reference, index, &key).await?);
                key
            }
            Fault::PostgresStopped => {
                let key = upload_and_reach_mid_load(world, rng, reference, index, file).await?;
                self.cluster.stop_abruptly()?;
                // A load that finished before the stop has nothing to retry.
                let still_queued = world.queue_depth(&world.queue_url).await? > 0;
                landed = match still_queued {
                    true => "dead-lettered, redriven",
                    false => "stopped after the load ended",
                };
                let dead_lettered = match still_queued {
                    true => wait_dead_lettered(world).await,
                    false => Ok(()),
                };
                self.cluster.start()?;
                if let Err(error) = dead_lettered {
                    problems.push(format!("{error:#}"));
                }
                problems.extend(all_or_nothing(world, reference, index, &key).await?);
                world.redrive().await?;
                key
            }
            Fault::InputGetCut => {
                let size = std::fs::metadata(file)?.len();
                let cuts = 1 + rng.below(2) as usize;
                world.proxy.set_plan(FaultPlan {
                    cut_input_gets: cuts,
                    cut_after_bytes: 1 + rng.below(size.saturating_sub(1).max(1)),
                    ..FaultPlan::default()
                });
                let cut_before = world.proxy.counts().cuts;
                let key = world.upload(file).await?;
                world.wait_settled(&key).await?;
                let cut = world.proxy.counts().cuts - cut_before;
                landed = "input GET cut mid-body";
                if cut != cuts as u64 {
                    problems.push(format!("{cut} GET(s) cut, {cuts} planned"));
                }
                key
            }
            Fault::PublishWriteFails => {
                let failures = 1 + rng.below(6) as usize;
                world.proxy.set_plan(FaultPlan {
                    fail_publish_writes: failures,
                    ..FaultPlan::default()
                });
                let failed_before = world.proxy.counts().failed_writes;
                let key = world.upload(file).await?;
                world.wait_settled(&key).await?;
                let failed = world.proxy.counts().failed_writes - failed_before;
                landed = if failed >= 3 {
                    "publish failed after the commit, redelivered"
                } else {
                    "publish retried by the SDK"
                };
                if failed != failures as u64 {
                    problems.push(format!("{failed} write(s) refused, {failures} planned"));
                }
                key
            }
            Fault::S3Unreachable => {
                let key = upload_and_reach_mid_load(world, rng, reference, index, file).await?;
                let dropped = world.proxy.counts().dropped;
                world.proxy.set_plan(FaultPlan {
                    unreachable: true,
                    ..FaultPlan::default()
                });
                tokio::time::sleep(Duration::from_millis(1000 + rng.below(4000))).await;
                world.proxy.set_plan(FaultPlan::default());
                landed = if world.proxy.counts().dropped > dropped {
                    "S3 unreachable mid-load"
                } else {
                    "S3 unreachable after the load ended"
                };
                world.lambda.wait_idle().await;
                problems.extend(all_or_nothing(world, reference, index, &key).await?);
                key
            }
        };
        world.wait_settled(&key).await?;
        world.proxy.set_plan(FaultPlan::default());
        Ok(Injected { problems, landed })
    }
}

/// What one injected fault found, and where it landed.
struct Injected {
    problems: Vec<String>,
    landed: &'static str,
}

/// Loads `files` in order with no fault, timing each load.
async fn clean_run_in(world: &World, files: &[PathBuf]) -> Result<Reference> {
    let mut cleans = Vec::new();
    for file in files {
        let invocations = world.lambda.invocations();
        let publishes = world.proxy.counts().publish_writes;
        let key = world.upload(file).await?;
        world.lambda.wait_for_invocation(invocations).await;
        let started = Instant::now();
        let publish_seen = world.proxy.wait_for_publish(publishes);
        let settled = world.wait_settled(&key);
        tokio::pin!(publish_seen, settled);
        let load = tokio::select! {
            _ = &mut publish_seen => {
                let load = started.elapsed();
                settled.await?;
                load
            }
            settled_now = &mut settled => {
                settled_now?;
                started.elapsed()
            }
        };
        cleans.push(CleanFile {
            load,
            published: world.proxy.counts().publish_writes > publishes,
            rows_after: row_counts(world).await?,
        });
    }
    let counts = world.proxy.counts();
    let reference = Reference {
        snapshot: Snapshot::take(&world.owner, &world.s3, &world.name).await?,
        files: cleans,
        invocations: world.lambda.invocations(),
        input_gets: counts.input_gets,
        publish_writes: counts.publish_writes,
    };
    Ok(reference)
}

/// The file a run aims its fault at: any, or for the publish faults one
/// whose clean load published processed_orders.csv.
fn pick_target(fault: Fault, rng: &mut SplitMix64, reference: &Reference) -> usize {
    let candidates: Vec<usize> = (0..reference.files.len())
        .filter(|&i| {
            !matches!(fault, Fault::KillDuringPublish | Fault::PublishWriteFails)
                || reference.files[i].published
        })
        .collect();
    candidates[rng.below(candidates.len() as u64) as usize]
}

/// Uploads file `index` and returns once its load has run a random moment
/// into it (the invocation handed out, then [`sleep_within`]).
async fn upload_and_reach_mid_load(
    world: &World,
    rng: &mut SplitMix64,
    reference: &Reference,
    index: usize,
    file: &std::path::Path,
) -> Result<String> {
    let invocations = world.lambda.invocations();
    let key = world.upload(file).await?;
    world.lambda.wait_for_invocation(invocations).await;
    sleep_within(rng, reference.files[index].load).await;
    Ok(key)
}

/// Sleeps a random moment inside a window as long as the clean load took.
async fn sleep_within(rng: &mut SplitMix64, window: Duration) {
    // Within the first 60%: a load may run faster than the clean one did,
    // and a fault after its end tests nothing.
    let millis = (window.as_millis() * 3 / 5).max(1) as u64;
    tokio::time::sleep(Duration::from_millis(rng.below(millis))).await;
}

async fn row_counts(world: &World) -> Result<(i64, i64)> {
    let client = world.owner.get().await?;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM barcodes)",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Right after the fault, before any redelivery: the file is in whole (its
/// ledger row loaded, the rows the clean run had after it) or not at all
/// (the rows the clean run had before it).
async fn all_or_nothing(
    world: &World,
    reference: &Reference,
    index: usize,
    key: &str,
) -> Result<Vec<String>> {
    let client = world.owner.get().await?;
    let loaded: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM ingestions
                            WHERE bucket = $1 AND key = $2 AND status = 'loaded')",
            &[&world.name, &key],
        )
        .await?
        .get(0);
    drop(client);
    let found = row_counts(world).await?;
    let expected = if loaded {
        reference.files[index].rows_after
    } else if index == 0 {
        (0, 0)
    } else {
        reference.files[index - 1].rows_after
    };
    Ok(if found == expected {
        Vec::new()
    } else {
        vec![format!(
            "not all or nothing: {key} is {}, and the tables hold {found:?} (orders, barcodes) \
             where {expected:?} was expected",
            if loaded { "loaded" } else { "not loaded" }
        )]
    })
}

/// Waits until the message is in the dead-letter queue and the ingest queue
/// is empty (every receive failed).
async fn wait_dead_lettered(world: &World) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let dead = world.queue_depth(&world.dead_letter_queue_url).await?;
        let queued = world.queue_depth(&world.queue_url).await?;
        if dead >= 1 && queued == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the message did not reach the dead-letter queue within 120 s \
             ({queued} still in the ingest queue, {dead} dead-lettered)"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
