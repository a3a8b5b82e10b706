//! processed_orders.csv published in segments (each publish rewriting only
//! the segments whose orders changed) is byte for byte the file a full
//! regeneration writes, after every step of generated sequences of files
//! and sales (the model tests' steps), on every load path. The segments are
//! cut a few lines long, in a bucket in memory that refuses a part below
//! its (as small) smallest part as S3 does; now and then the published file
//! or one of its segments is deleted behind the pipeline's back.
//!
//! `make test` runs a few tens of cases; `PROPTEST_CASES=1000` runs more.

#[allow(dead_code)]
mod model;

use model::steps::{self, Step};
use model::system::{LoadPath, LOAD_PATHS};
use order_pipeline::config::PROCESSED_ORDERS_KEY;
use order_pipeline::error_chain::ErrorChain;
use order_pipeline::ingest::Ingestor;
use order_pipeline::processed::segments::{SegmentLayout, SEGMENTS_PREFIX};
use order_pipeline::processed::ProcessedOrdersWriter;
use order_pipeline::storage::memory::MemoryStore;
use order_pipeline::storage::ObjectRef;
use pipeline_test_support::{unique_name, TestDatabase};
use proptest::prelude::*;

/// Cases when `PROPTEST_CASES` does not say: each runs its steps on three
/// fresh databases, a second or two.
const DEFAULT_CASES: u32 = 24;

/// A segment is cut after about three lines ...
const SEGMENT_BYTES: u64 = 40;
/// ... and one but the last must hold at least 20 bytes.
const MIN_PART_BYTES: u64 = 20;

#[derive(Debug, Clone)]
enum Action {
    Step(Step),
    /// Someone deletes processed_orders.csv.
    DeleteFile,
    /// Someone deletes a segment (the `n`-th, modulo how many there are)
    /// and the file with it, so the next publish must assemble it again.
    DeleteSegment(usize),
}

fn actions() -> impl Strategy<Value = Vec<Action>> {
    let action = prop_oneof![
        10 => steps::step().prop_map(Action::Step),
        1 => Just(Action::DeleteFile),
        1 => any::<usize>().prop_map(Action::DeleteSegment),
    ];
    prop::collection::vec(action, 1..=12)
}

proptest! {
    #![proptest_config(model::proptest_config(DEFAULT_CASES))]

    #[test]
    fn the_published_segments_equal_a_full_regeneration_after_every_step(actions in actions()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        if let Err(difference) = runtime.block_on(run_on_every_path(&actions)) {
            return Err(TestCaseError::fail(difference));
        }
    }
}

/// A sale of old orders' barcodes, then one of new orders': the segments
/// in the middle and at the end are rewritten, and the file still equals a
/// regeneration.
#[tokio::test]
async fn late_barcodes_for_orders_all_over_the_file_keep_it_equal_to_a_regeneration() {
    use model::steps::{Kind, Row};
    let orders = (1..=9).map(|id| Row::order(id, id % 3 + 1)).collect();
    let early = vec![
        Row::barcode("A1", Some(1)),
        Row::barcode("A2", Some(2)),
        Row::barcode("B_3", Some(5)),
        Row::barcode("C-4", Some(9)),
        Row::barcode("D5", None),
    ];
    let late = vec![
        Row::barcode("D5", Some(4)),
        Row::barcode("E6", Some(7)),
        Row::barcode("F7", Some(3)),
    ];
    let actions = [
        Action::Step(Step::upload(0, Kind::Orders, orders)),
        Action::Step(Step::upload(1, Kind::Barcodes, early)),
        Action::Step(Step::upload(2, Kind::Barcodes, late)),
        Action::DeleteSegment(1),
        Action::Step(Step::Sell {
            customer_id: 2,
            tickets: 1,
        }),
    ];
    if let Err(difference) = run_on_every_path(&actions).await {
        panic!("{difference}");
    }
}

async fn run_on_every_path(actions: &[Action]) -> Result<(), String> {
    let mut pipelines = Vec::new();
    for path in LOAD_PATHS {
        pipelines.push((path, Segmented::create(path).await));
    }
    let runs = pipelines
        .iter_mut()
        .map(|(path, pipeline)| pipeline.run(*path, actions));
    let outcome = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .collect();
    // As in the model tests: drop the databases only once every path is done.
    drop(pipelines);
    outcome
}

/// The ingestor over a bucket in memory, cutting segments tiny.
struct Segmented {
    db: TestDatabase,
    bucket: String,
    store: MemoryStore,
    ingestor: Ingestor<MemoryStore>,
    /// Each upload's key and version id.
    uploads: Vec<(String, Option<String>)>,
}

impl Segmented {
    async fn create(path: LoadPath) -> Self {
        let db = TestDatabase::create().await;
        let store = MemoryStore::versioned().with_min_part_size(MIN_PART_BYTES);
        let ingestor = Ingestor::new(store.clone(), path.configure(db.store()))
            .with_segment_layout(SegmentLayout {
                target_bytes: SEGMENT_BYTES,
            });
        Self {
            db,
            bucket: unique_name("segments"),
            store,
            ingestor,
            uploads: Vec::new(),
        }
    }

    async fn run(&mut self, path: LoadPath, actions: &[Action]) -> Result<(), String> {
        for (number, action) in actions.iter().enumerate() {
            self.act(action).await?;
            self.ingestor
                .publish_processed_orders(&self.bucket)
                .await
                .map_err(|e| format!("{path:?}, step {number}: publishing: {}", ErrorChain(&e)))?;
            self.check()
                .await
                .map_err(|e| format!("{path:?}, step {number} ({action:?}): {e}"))?;
        }
        Ok(())
    }

    async fn act(&mut self, action: &Action) -> Result<(), String> {
        match action {
            Action::Step(Step::Upload { key, file }) => {
                let key = Step::key(*key);
                let (_, version_id) =
                    self.store
                        .insert(&self.bucket, &key, file.render().into_bytes());
                self.uploads.push((key, version_id));
                self.ingest(self.uploads.len() - 1).await
            }
            Action::Step(Step::Redeliver { upload }) if !self.uploads.is_empty() => {
                self.ingest(upload % self.uploads.len()).await
            }
            Action::Step(Step::Redeliver { .. }) => Ok(()),
            Action::Step(Step::Sell {
                customer_id,
                tickets,
            }) => {
                self.db
                    .store()
                    .sell(*customer_id, *tickets as i64, None)
                    .await
                    .map_err(|e| format!("selling: {}", ErrorChain(&e)))?;
                Ok(())
            }
            Action::DeleteFile => {
                self.store.delete(&self.bucket, PROCESSED_ORDERS_KEY);
                Ok(())
            }
            Action::DeleteSegment(n) => {
                let segments = self.store.keys(&self.bucket, SEGMENTS_PREFIX);
                if let Some(key) = segments.get(n % segments.len().max(1)) {
                    self.store.delete(&self.bucket, key);
                    self.store.delete(&self.bucket, PROCESSED_ORDERS_KEY);
                }
                Ok(())
            }
        }
    }

    async fn ingest(&self, upload: usize) -> Result<(), String> {
        let (key, version_id) = &self.uploads[upload];
        let mut object = ObjectRef::new(&self.bucket, key);
        object.version_id = version_id.clone();
        self.ingestor
            .ingest(&object)
            .await
            .map(drop)
            .map_err(|e| format!("ingesting {key}: {}", ErrorChain(&e)))
    }

    /// The published file equals a full regeneration; the segments on record
    /// are exactly those in the bucket; none but the last is below the
    /// smallest part (the store would have refused the file otherwise).
    async fn check(&self) -> Result<(), String> {
        let published = self
            .store
            .get(&self.bucket, PROCESSED_ORDERS_KEY)
            .ok_or("processed_orders.csv is missing")?;
        let regenerated = self.regenerate().await;
        if published != regenerated {
            return Err(format!(
                "the published file\n{}\ndiffers from a full regeneration\n{}",
                String::from_utf8_lossy(&published),
                String::from_utf8_lossy(&regenerated)
            ));
        }
        let client = self.db.pool.get().await.unwrap();
        let rows = client
            .query(
                "SELECT object_key, bytes FROM export_segments WHERE destination = $1
                 ORDER BY first_order_id",
                &[&self.bucket],
            )
            .await
            .unwrap();
        let mut on_record: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let bytes: Vec<i64> = rows.iter().map(|r| r.get(1)).collect();
        if bytes.iter().sum::<i64>() != published.len() as i64 {
            return Err(format!(
                "segments of {bytes:?} bytes make a file of {}",
                published.len()
            ));
        }
        on_record.sort();
        let stored = self.store.keys(&self.bucket, SEGMENTS_PREFIX);
        if on_record != stored {
            return Err(format!(
                "segments on record {on_record:?}, in the bucket {stored:?}"
            ));
        }
        Ok(())
    }

    async fn regenerate(&self) -> Vec<u8> {
        let publish = self.db.store().begin_publish(&self.bucket).await.unwrap();
        let mut writer = ProcessedOrdersWriter::new(Vec::new()).unwrap();
        publish
            .for_each_processed_order(|order| {
                writer
                    .write(&order)
                    .map_err(|e| order_pipeline::postgres::DbError::Export {
                        what: "the regeneration",
                        source: std::io::Error::other(e),
                    })
            })
            .await
            .unwrap();
        publish.release().await.unwrap();
        writer.finish().unwrap()
    }
}
