//! The floor the ingest is measured against: COPY of both files into bare
//! tables of the same column types, then the same keys built afterwards.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::SinkExt;
use tokio::io::AsyncReadExt;
use tokio_postgres::Client;

use crate::datasets::FILES;
use crate::postgres;
use crate::scratch::Scratch;

/// The key columns as migrations/ declares them: barcode compares bytewise
/// (COLLATE "C"), which makes its index about twice as fast to build as under
/// the database's default collation; a floor without it would flatter ingest.
const SCHEMA: &str = "
CREATE TABLE orders (order_id bigint, customer_id bigint);
CREATE TABLE barcodes (barcode text COLLATE \"C\", order_id bigint);";

/// The keys and indexes of migrations/, built after the load, with the memory
/// the ingest's own index builds get. barcodes gets a plain index on barcode:
/// a unique one cannot be built, the files hold deliberate duplicate barcodes
/// (the real path rejects those rows instead).
const KEYS: &str = "
SET maintenance_work_mem = '512MB';
ALTER TABLE orders ADD PRIMARY KEY (order_id);
CREATE INDEX ON orders (customer_id, order_id);
CREATE INDEX ON barcodes (barcode);
CREATE INDEX ON barcodes (order_id);";

/// Seconds of a floor run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Floor {
    pub copy: f64,
    /// 0 when the keys existed already.
    pub keys: f64,
}

impl Floor {
    pub fn total(&self) -> f64 {
        self.copy + self.keys
    }
}

/// Whether the floor builds the keys after copying, or copies into tables
/// that have them already (the incremental file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    BuildAfter,
    Exist,
}

/// Creates the database `name` with the floor's bare tables; its URL.
pub async fn create(scratch: &mut Scratch, name: &str) -> Result<String> {
    let url = scratch.database(name).await?;
    postgres::connect(&url).await?.batch_execute(SCHEMA).await?;
    Ok(url)
}

/// COPYs DIR's files into the floor tables of `database_url`, then builds
/// the keys unless they exist.
pub async fn run(database_url: &str, dir: &Path, keys: Keys) -> Result<Floor> {
    run_all(database_url, &[dir], keys).await
}

/// COPYs the files of every one of `dirs`, one after the other, into the
/// floor tables of `database_url`, then builds the keys unless they exist.
pub async fn run_all(database_url: &str, dirs: &[&Path], keys: Keys) -> Result<Floor> {
    let client = postgres::connect(database_url).await?;
    let started = Instant::now();
    for dir in dirs {
        for name in FILES {
            let table = name.trim_end_matches(".csv");
            copy_file(&client, table, &dir.join(name))
                .await
                .with_context(|| format!("copying {} into {table}", dir.join(name).display()))?;
        }
    }
    let copied = Instant::now();
    if keys == Keys::BuildAfter {
        client
            .batch_execute(KEYS)
            .await
            .context("building the floor's keys")?;
    }
    Ok(Floor {
        copy: (copied - started).as_secs_f64(),
        keys: copied.elapsed().as_secs_f64(),
    })
}

/// The floor of a barcodes-only file selling stored barcodes: COPY into a
/// staging table, then one UPDATE of the indexed floor table by barcode.
pub async fn sell(database_url: &str, file: &Path) -> Result<Floor> {
    let client = postgres::connect(database_url).await?;
    // Statistics first (not timed): without them the planner joins by
    // scanning the whole table (100 s onto a 10M base, against seconds by
    // index), which would flatter the ingest.
    client
        .batch_execute(
            "ANALYZE barcodes;
             CREATE TEMP TABLE late (barcode text COLLATE \"C\", order_id bigint)",
        )
        .await?;
    let started = Instant::now();
    copy_file(&client, "late", file)
        .await
        .with_context(|| format!("copying {} into late", file.display()))?;
    client
        .batch_execute(
            "ANALYZE late;
             UPDATE barcodes b SET order_id = l.order_id FROM late l WHERE b.barcode = l.barcode",
        )
        .await
        .context("selling the floor's barcodes")?;
    Ok(Floor {
        copy: started.elapsed().as_secs_f64(),
        keys: 0.0,
    })
}

/// `\copy TABLE FROM 'PATH' CSV HEADER`, as psql sends it: the file streamed
/// over the connection in large chunks.
async fn copy_file(client: &Client, table: &str, path: &Path) -> Result<()> {
    let sink = client
        .copy_in(&format!("COPY {table} FROM STDIN (FORMAT csv, HEADER)"))
        .await?;
    futures_util::pin_mut!(sink);
    let mut file = tokio::fs::File::open(path).await?;
    let mut chunk = vec![0; 1 << 20];
    loop {
        let read = file.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        sink.send(Bytes::copy_from_slice(&chunk[..read])).await?;
    }
    sink.finish().await?;
    Ok(())
}
