//! Files onto a base that is already loaded, the steady state: an
//! increment of new orders with their barcodes, and late barcodes (a
//! barcodes-only file selling stored unsold barcodes to the latest orders,
//! so it touches old orders). Each runs into the database of a first load
//! and against the floor tables of that load, so the same file can be
//! timed onto bases of different sizes.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use order_pipeline::config::INCOMING_PREFIX;

use super::floor::{self, Floor, Keys};
use super::real_ingest;
use super::report::Row;
use crate::datasets;
use crate::scratch::Scratch;

/// A first load left in place for the files that follow it.
pub struct Base {
    pub orders: u64,
    pub dir: PathBuf,
    pub url: String,
    pub floor_url: String,
}

/// `increment` new orders (ids after the base's) and their barcodes.
pub async fn new_orders(
    bin: &Path,
    scratch: &Scratch,
    out: &Path,
    base: &Base,
    increment: u64,
) -> Result<Row> {
    let label = format!("+{} onto {}", short(increment), short(base.orders));
    let dir = out.join(format!("increment-{increment}-onto-{}", base.orders));
    let summary = datasets::generate(
        &dir,
        datagen::Config {
            orders: increment,
            seed: 2,
            first_order_id: base.orders + 1,
        },
    )?;
    datasets::upload(scratch, &dir).await?;
    let keys = datasets::FILES.map(|name| format!("{INCOMING_PREFIX}{name}"));
    let ingested = real_ingest(bin, scratch, &label, &keys, &base.url, out).await?;
    crate::workspace::say(&format!(
        "{label}: floor (COPY into the already indexed floor tables)"
    ));
    let floor = floor::run(&base.floor_url, &dir, Keys::Exist).await?;
    Ok(super::row(
        label,
        datasets::data_rows(&summary),
        &ingested,
        floor,
        true,
    ))
}

/// A barcodes-only file of `count` stored unsold barcodes (the last ones
/// of the base's barcodes.csv), one sold to each of the base's latest
/// `count` orders: late barcodes for recent orders.
pub async fn late_barcodes(
    bin: &Path,
    scratch: &Scratch,
    out: &Path,
    base: &Base,
    count: u64,
) -> Result<Row> {
    let label = format!("+late {} onto {}", short(count), short(base.orders));
    let file = out.join(format!("late-{count}-onto-{}.csv", base.orders));
    let written = write_late_barcodes(&base.dir.join("barcodes.csv"), &file, base.orders, count)?;
    let key = format!("{INCOMING_PREFIX}late-barcodes.csv");
    pipeline_local::upload::upload_file(&scratch.s3, &scratch.names.bucket, &key, &file).await?;
    let ingested = real_ingest(bin, scratch, &label, &[key], &base.url, out).await?;
    crate::workspace::say(&format!(
        "{label}: floor (COPY into a staging table, UPDATE of the indexed floor table)"
    ));
    let floor: Floor = floor::sell(&base.floor_url, &file).await?;
    Ok(super::row(label, written, &ingested, floor, true))
}

/// Writes the late barcodes file; returns its data rows.
fn write_late_barcodes(base: &Path, to: &Path, base_orders: u64, count: u64) -> Result<u64> {
    let input = std::fs::File::open(base).with_context(|| format!("opening {}", base.display()))?;
    let mut unused = std::collections::VecDeque::with_capacity(count as usize);
    for line in std::io::BufReader::with_capacity(1 << 20, input)
        .lines()
        .skip(1)
    {
        let line = line?;
        if let Some(code) = line.strip_suffix(',') {
            if unused.len() == count as usize {
                unused.pop_front();
            }
            unused.push_back(code.to_owned());
        }
    }
    let mut output = BufWriter::new(
        std::fs::File::create(to).with_context(|| format!("creating {}", to.display()))?,
    );
    writeln!(output, "barcode,order_id")?;
    for (i, code) in unused.iter().enumerate() {
        writeln!(output, "{code},{}", base_orders - i as u64)?;
    }
    output.flush()?;
    Ok(unused.len() as u64)
}

/// 100000 as 100k, 1000000 as 1M.
fn short(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_barcodes_are_the_last_unsold_ones_sold_to_the_latest_orders() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("barcodes.csv");
        std::fs::write(&base, "barcode,order_id\nA,1\nB,\nC,2\nD,\nE,\nF,3\n").unwrap();
        let late = dir.path().join("late.csv");
        assert_eq!(write_late_barcodes(&base, &late, 3, 2).unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(&late).unwrap(),
            "barcode,order_id\nD,3\nE,2\n"
        );
    }

    #[test]
    fn sizes_read_as_in_the_readme() {
        assert_eq!(short(100_000), "100k");
        assert_eq!(short(10_000_000), "10M");
        assert_eq!(short(1_500), "1500");
    }
}
