//! `datagen`: writes a deterministic orders.csv and barcodes.csv pair of any
//! size. See `datagen --help`.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use datagen::{Config, MAX_ORDER_ID};

const ABOUT: &str =
    "Writes a deterministic orders.csv and barcodes.csv pair shaped like real ticketing data";

const LONG_ABOUT: &str = "\
Writes DIR/orders.csv (order_id,customer_id) and DIR/barcodes.csv
(barcode,order_id) shaped like real ticketing exports, for benchmarks and load
tests. The same options give the same bytes, on any machine, forever.

Shape of the data, for --orders N:
  - order ids K..K+N-1 (K = --first-order-id), one row each, in that order;
    customer ids uniform over 1..=max(N/10, 1)
  - each order has 1-5 barcodes (uniform, mean 3); about 0.1% of orders have
    none
  - about N/3 unused barcodes (empty order_id), interleaved through the file
  - about 0.1% of barcode rows repeat an earlier sold barcode further down the
    file, naming a different order (the pipeline must reject these copies)
  - barcodes are 11-digit numbers (about 10% start with 0), a fixed function
    of order id and slot: files with disjoint order id ranges never share a
    barcode, whatever their seeds

Both files are streamed with buffered writes: memory stays flat whatever N.
A one-line summary goes to stderr.";

const AFTER_HELP: &str = "\
Examples:
  datagen --orders 1000000 --out .local/bench/full
  # an incremental file for a database that already holds orders 1..=1000000:
  datagen --orders 100000 --first-order-id 1000001 --seed 2 --out .local/bench/incr";

#[derive(Parser)]
#[command(version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
struct Args {
    /// Number of orders (rows of orders.csv); barcodes.csv gets about 3.3 rows per order.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    orders: u64,
    /// Seed for every random choice; the same seed and options give the same bytes.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// The first order id. Give a second, incremental file ids beyond the first
    /// file's (e.g. N+1): its orders and barcodes are then all new.
    #[arg(long, value_name = "K", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=MAX_ORDER_ID))]
    first_order_id: u64,
    /// Directory to write orders.csv and barcodes.csv into (created if missing;
    /// existing files are replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

fn create(path: &Path) -> Result<BufWriter<File>, String> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .map_err(|e| format!("creating {}: {e}", path.display()))
}

fn run(args: &Args) -> Result<(), String> {
    let config = Config {
        orders: args.orders,
        seed: args.seed,
        first_order_id: args.first_order_id,
    };
    config.validate()?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("creating {}: {e}", args.out.display()))?;
    let orders_path = args.out.join("orders.csv");
    let barcodes_path = args.out.join("barcodes.csv");
    let started = Instant::now();
    let summary = datagen::generate(&config, create(&orders_path)?, create(&barcodes_path)?)
        .map_err(|e| format!("writing {}: {e}", args.out.display()))?;
    eprintln!(
        "datagen: wrote {} ({} rows, order ids {}..={}) and {} ({} rows) in {:.1}s: {summary}",
        orders_path.display(),
        summary.orders,
        config.first_order_id,
        config.last_order_id().expect("validated"),
        barcodes_path.display(),
        summary.barcode_rows,
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("datagen: error: {message}");
            ExitCode::FAILURE
        }
    }
}
