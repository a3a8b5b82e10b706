//! Deterministic test data shaped like real ticketing exports: an
//! `orders.csv` (`order_id,customer_id`) and a `barcodes.csv`
//! (`barcode,order_id`, `order_id` empty for an unsold barcode).
//!
//! The output is a pure function of [`Config`]: the generator uses its own
//! tiny PRNG ([`splitmix::SplitMix64`]) and its own barcode permutation
//! ([`barcode`]), never a crate whose stream could change, so a seed gives
//! the same bytes forever.
//!
//! Both files are written as a stream, order by order; the only state kept is
//! a handful of barcodes waiting to be repeated as duplicates further down.

pub mod barcode;
pub mod splitmix;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;

use barcode::{barcode_number, format_barcode, Decimal};
use splitmix::SplitMix64;

/// Customers per order: N orders are spread over N / 10 customers.
pub const ORDERS_PER_CUSTOMER: u64 = 10;
/// Barcodes per order, uniform in 1..=MAX_BARCODES_PER_ORDER.
pub const MAX_BARCODES_PER_ORDER: u64 = 5;
/// One order in this many has no barcodes at all.
pub const NO_BARCODES_ONE_IN: u64 = 1000;
/// One order in this many also brings an unused barcode (empty order_id):
/// unused barcodes are worth a third of the orders.
pub const UNUSED_ONE_IN: u64 = 3;
/// One sold barcode row in this many is repeated later in the file for
/// another order. Sold rows are about 90% of the barcode rows, so duplicates
/// come to about 0.1% of them.
pub const DUPLICATE_ONE_IN: u64 = 900;
/// A duplicate appears within this many orders after its original.
pub const DUPLICATE_MAX_DELAY_ORDERS: u64 = 1000;
/// Barcodes are this many decimal digits, zero-padded.
pub const BARCODE_DIGITS: usize = 11;
/// Barcode numbers lie in 0..BARCODE_SPACE.
pub(crate) const BARCODE_SPACE: u64 = 100_000_000_000;
/// Barcode slots per order id: 0..5 sold, 5 unused, 6 and 7 spare.
pub(crate) const SLOTS_PER_ORDER: u64 = 8;
const UNUSED_SLOT: u64 = 5;
/// The largest order id whose barcodes still fit in 11 digits.
pub const MAX_ORDER_ID: u64 = BARCODE_SPACE / SLOTS_PER_ORDER - 1;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Rows of orders.csv.
    pub orders: u64,
    /// Seeds every random choice (customers, barcode counts, duplicates...).
    pub seed: u64,
    /// Order ids are first_order_id..first_order_id + orders.
    pub first_order_id: u64,
}

impl Config {
    /// Customers are 1..=customers().
    pub fn customers(&self) -> u64 {
        (self.orders / ORDERS_PER_CUSTOMER).max(1)
    }

    pub fn last_order_id(&self) -> Option<u64> {
        self.first_order_id.checked_add(self.orders)?.checked_sub(1)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.orders == 0 {
            return Err("--orders must be at least 1".into());
        }
        if self.first_order_id == 0 {
            return Err("--first-order-id must be at least 1 (order ids are positive)".into());
        }
        match self.last_order_id() {
            Some(last) if last <= MAX_ORDER_ID => Ok(()),
            _ => Err(format!(
                "order ids would go past {MAX_ORDER_ID}, the largest whose barcodes fit in \
                 {BARCODE_DIGITS} digits; lower --first-order-id or --orders"
            )),
        }
    }
}

/// What was written: the counts the one-line summary prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub orders: u64,
    pub customers: u64,
    /// Data rows of barcodes.csv: sold + duplicates + unused.
    pub barcode_rows: u64,
    /// Barcode rows for an order, first occurrences only.
    pub sold: u64,
    /// Later copies of an earlier sold barcode, naming another order.
    pub duplicates: u64,
    /// Rows with an empty order_id.
    pub unused: u64,
    pub orders_without_barcodes: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} orders ({} customers), {} barcode rows: {} sold, {} duplicates, {} unused; \
             {} orders without barcodes",
            self.orders,
            self.customers,
            self.barcode_rows,
            self.sold,
            self.duplicates,
            self.unused,
            self.orders_without_barcodes
        )
    }
}

/// A barcode waiting to be repeated further down the file.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PendingDuplicate {
    /// Emitted with the first order (that has barcodes) at or after this index.
    due: u64,
    /// Tie-break so equal `due`s come out in the order they were scheduled.
    scheduled: u64,
    barcode: u64,
    original_order_id: u64,
}

/// Writes both files for `config` and returns what was written. The writers
/// get one small write per row: give them buffered writers (files) or plain
/// vectors (tests). Both are flushed before returning.
pub fn generate<O: Write, B: Write>(
    config: &Config,
    orders_out: O,
    barcodes_out: B,
) -> Result<Summary, csv::Error> {
    if let Err(message) = config.validate() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, message).into());
    }
    let mut orders = csv::WriterBuilder::new()
        .buffer_capacity(1 << 16)
        .from_writer(orders_out);
    let mut barcodes = csv::WriterBuilder::new()
        .buffer_capacity(1 << 16)
        .from_writer(barcodes_out);
    orders.write_record(["order_id", "customer_id"])?;
    barcodes.write_record(["barcode", "order_id"])?;

    let mut rng = SplitMix64::new(config.seed);
    let customers = config.customers();
    let mut summary = Summary {
        orders: config.orders,
        customers,
        ..Summary::default()
    };
    let mut pending: BinaryHeap<Reverse<PendingDuplicate>> = BinaryHeap::new();
    let mut scheduled = 0u64;
    let mut last_order_with_barcodes = None;

    for index in 0..config.orders {
        let order_id = config.first_order_id + index;
        let order_field = Decimal::new(order_id);
        let customer_id = 1 + rng.below(customers);
        orders.write_record([order_field.as_bytes(), Decimal::new(customer_id).as_bytes()])?;

        let sold = if rng.one_in(NO_BARCODES_ONE_IN) {
            summary.orders_without_barcodes += 1;
            0
        } else {
            1 + rng.below(MAX_BARCODES_PER_ORDER)
        };
        let has_unused = rng.one_in(UNUSED_ONE_IN);
        // Where the unused barcode goes among this order's rows.
        let unused_position = rng.below(sold + 1);

        for slot in 0..=sold {
            if has_unused && slot == unused_position {
                let barcode = format_barcode(barcode_number(order_id, UNUSED_SLOT));
                barcodes.write_record([&barcode[..], b""])?;
                summary.unused += 1;
            }
            if slot == sold {
                break;
            }
            let number = barcode_number(order_id, slot);
            barcodes.write_record([&format_barcode(number)[..], order_field.as_bytes()])?;
            summary.sold += 1;
            if rng.one_in(DUPLICATE_ONE_IN) {
                pending.push(Reverse(PendingDuplicate {
                    due: index + 1 + rng.below(DUPLICATE_MAX_DELAY_ORDERS),
                    scheduled,
                    barcode: number,
                    original_order_id: order_id,
                }));
                scheduled += 1;
            }
        }

        if sold > 0 {
            last_order_with_barcodes = Some(order_id);
            // Duplicates that are due name this order: always a later one
            // than their original, since `due` > the original's index.
            while pending.peek().is_some_and(|p| p.0.due <= index) {
                let Reverse(dup) = pending.pop().expect("peeked");
                debug_assert_ne!(dup.original_order_id, order_id);
                barcodes
                    .write_record([&format_barcode(dup.barcode)[..], order_field.as_bytes()])?;
                summary.duplicates += 1;
            }
        }
    }

    // Duplicates due past the end go to the last order that has barcodes,
    // unless that is their own order (then there is no later one: drop them).
    if let Some(last) = last_order_with_barcodes {
        let last_field = Decimal::new(last);
        while let Some(Reverse(dup)) = pending.pop() {
            if dup.original_order_id != last {
                barcodes.write_record([&format_barcode(dup.barcode)[..], last_field.as_bytes()])?;
                summary.duplicates += 1;
            }
        }
    }

    summary.barcode_rows = summary.sold + summary.duplicates + summary.unused;
    orders.flush()?;
    barcodes.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn generate_bytes(config: &Config) -> (Vec<u8>, Vec<u8>, Summary) {
        let (mut orders, mut barcodes) = (Vec::new(), Vec::new());
        let summary = generate(config, &mut orders, &mut barcodes).expect("generate");
        (orders, barcodes, summary)
    }

    fn config(orders: u64, seed: u64, first_order_id: u64) -> Config {
        Config {
            orders,
            seed,
            first_order_id,
        }
    }

    struct Parsed {
        /// order_id -> customer_id, in file order.
        orders: Vec<(u64, u64)>,
        /// (barcode, order_id), in file order.
        barcodes: Vec<(String, Option<u64>)>,
    }

    fn parse(orders: &[u8], barcodes: &[u8]) -> Parsed {
        let mut reader = csv::Reader::from_reader(orders);
        assert_eq!(
            reader.headers().unwrap(),
            &csv::StringRecord::from(vec!["order_id", "customer_id"])
        );
        let orders = reader
            .records()
            .map(|r| {
                let r = r.expect("orders line parses");
                assert_eq!(r.len(), 2);
                (r[0].parse().unwrap(), r[1].parse().unwrap())
            })
            .collect();
        let mut reader = csv::Reader::from_reader(barcodes);
        assert_eq!(
            reader.headers().unwrap(),
            &csv::StringRecord::from(vec!["barcode", "order_id"])
        );
        let barcodes = reader
            .records()
            .map(|r| {
                let r = r.expect("barcodes line parses");
                assert_eq!(r.len(), 2, "two fields: {r:?}");
                let order = (!r[1].is_empty()).then(|| {
                    r[1].parse::<u64>()
                        .unwrap_or_else(|e| panic!("order_id {:?}: {e}", &r[1]))
                });
                (r[0].to_string(), order)
            })
            .collect();
        Parsed { orders, barcodes }
    }

    #[test]
    fn same_seed_same_bytes() {
        let c = config(5_000, 7, 1);
        let (o1, b1, s1) = generate_bytes(&c);
        let (o2, b2, s2) = generate_bytes(&c);
        assert_eq!(o1, o2);
        assert_eq!(b1, b2);
        assert_eq!(s1, s2);
    }

    #[test]
    fn another_seed_other_bytes() {
        let (o1, b1, _) = generate_bytes(&config(5_000, 7, 1));
        let (o2, b2, _) = generate_bytes(&config(5_000, 8, 1));
        assert_ne!(o1, o2);
        assert_ne!(b1, b2);
    }

    #[test]
    fn output_is_pinned() {
        // The stream must never change: if this fails, a change broke the
        // promise that a seed gives the same bytes forever.
        let (orders, barcodes, _) = generate_bytes(&config(3, 42, 1));
        assert_eq!(
            String::from_utf8(orders).unwrap(),
            "order_id,customer_id\n1,1\n2,1\n3,1\n"
        );
        let barcodes = String::from_utf8(barcodes).unwrap();
        assert_eq!(barcodes, PINNED_BARCODES, "got:\n{barcodes}");
    }

    const PINNED_BARCODES: &str = "barcode,order_id
82077201417,1
57633754078,1
85610631681,2
65779697545,2
35605697693,
66462254371,2
27492617634,2
36660807719,3
";

    /// FNV-1a, 64-bit: a fixed checksum for pinning larger outputs.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    #[test]
    fn larger_output_is_pinned() {
        let (orders, barcodes, summary) = generate_bytes(&config(20_000, 1, 1));
        assert_eq!(
            (fnv1a(&orders), fnv1a(&barcodes), summary),
            (
                17_175_120_710_641_290_461,
                4_506_784_829_795_689_176,
                Summary {
                    orders: 20_000,
                    customers: 2_000,
                    barcode_rows: 66_698,
                    sold: 59_998,
                    duplicates: 55,
                    unused: 6_645,
                    orders_without_barcodes: 17,
                }
            ),
        );
    }

    #[test]
    fn shape_of_20k_orders() {
        let c = config(20_000, 1, 1);
        let (orders, barcodes, summary) = generate_bytes(&c);
        let parsed = parse(&orders, &barcodes);

        // Orders: unique ids first..first+N, over N/10 customers.
        assert_eq!(parsed.orders.len(), 20_000);
        let ids: Vec<u64> = parsed.orders.iter().map(|o| o.0).collect();
        assert_eq!(ids, (1..=20_000).collect::<Vec<_>>());
        let customers: HashSet<u64> = parsed.orders.iter().map(|o| o.1).collect();
        assert!(customers.iter().all(|c| (1..=2_000).contains(c)));
        assert!(customers.len() > 1_990, "{} customers", customers.len());

        // Barcodes: first occurrences per order, duplicates, unused.
        let mut first_seen: HashMap<&str, Option<u64>> = HashMap::new();
        let mut per_order: HashMap<u64, u64> = HashMap::new();
        let (mut duplicates, mut unused) = (0u64, 0u64);
        let mut leading_zero = 0u64;
        for (barcode, order) in &parsed.barcodes {
            assert_eq!(barcode.len(), 11, "{barcode}");
            assert!(barcode.bytes().all(|b| b.is_ascii_digit()), "{barcode}");
            leading_zero += u64::from(barcode.starts_with('0'));
            if let Some(order) = order {
                assert!((1..=20_000).contains(order), "order {order}");
            }
            match first_seen.get(barcode.as_str()) {
                Some(original) => {
                    duplicates += 1;
                    let order = order.expect("a duplicate names an order");
                    assert_ne!(
                        *original,
                        Some(order),
                        "duplicate {barcode} names its own order"
                    );
                    assert!(original.is_some(), "only sold barcodes are duplicated");
                }
                None => {
                    first_seen.insert(barcode, *order);
                    match order {
                        Some(order) => *per_order.entry(*order).or_default() += 1,
                        None => unused += 1,
                    }
                }
            }
        }
        let rows = parsed.barcodes.len() as u64;
        assert_eq!(summary.barcode_rows, rows);
        assert_eq!(summary.duplicates, duplicates);
        assert_eq!(summary.unused, unused);
        assert_eq!(summary.sold, per_order.values().sum::<u64>());
        assert_eq!(
            summary.orders_without_barcodes,
            20_000 - per_order.len() as u64
        );

        // 1-5 barcodes per order, uniform (mean 3).
        assert!(per_order.values().all(|n| (1..=5).contains(n)));
        let mean = summary.sold as f64 / per_order.len() as f64;
        assert!((2.95..=3.05).contains(&mean), "mean {mean}");
        for k in 1..=5 {
            let share =
                per_order.values().filter(|n| **n == k).count() as f64 / per_order.len() as f64;
            assert!((0.18..=0.22).contains(&share), "{k} barcodes: {share}");
        }
        // About 0.1% duplicates and orders without barcodes, a third of N unused.
        let dup_share = duplicates as f64 / rows as f64;
        assert!(
            (0.0005..=0.0015).contains(&dup_share),
            "duplicates {dup_share}"
        );
        assert!(
            (8..=40).contains(&summary.orders_without_barcodes),
            "orders without barcodes {}",
            summary.orders_without_barcodes
        );
        assert!((6_300..=7_000).contains(&unused), "unused {unused}");
        // Some barcodes keep leading zeros (about 10% of 11-digit numbers).
        assert!(leading_zero as f64 / rows as f64 > 0.07, "{leading_zero}");

        // Unused barcodes are spread through the file, not bunched at one end.
        let positions: Vec<usize> = parsed
            .barcodes
            .iter()
            .enumerate()
            .filter(|(_, b)| b.1.is_none())
            .map(|(i, _)| i)
            .collect();
        let in_first_half = positions
            .iter()
            .filter(|&&i| i < parsed.barcodes.len() / 2)
            .count();
        let half = positions.len() as f64 / 2.0;
        assert!((in_first_half as f64 - half).abs() < half * 0.1);
    }

    #[test]
    fn incremental_file_has_fresh_orders_and_barcodes() {
        let first = config(10_000, 1, 1);
        let next = config(2_000, 2, 10_001);
        let (o1, b1, _) = generate_bytes(&first);
        let (o2, b2, _) = generate_bytes(&next);
        let (p1, p2) = (parse(&o1, &b1), parse(&o2, &b2));
        let ids1: HashSet<u64> = p1.orders.iter().map(|o| o.0).collect();
        assert!(p2
            .orders
            .iter()
            .all(|o| !ids1.contains(&o.0) && o.0 > 10_000));
        let codes1: HashSet<&str> = p1.barcodes.iter().map(|b| b.0.as_str()).collect();
        assert!(p2.barcodes.iter().all(|b| !codes1.contains(b.0.as_str())));
        assert!(p2
            .barcodes
            .iter()
            .filter_map(|b| b.1)
            .all(|o| (10_001..=12_000).contains(&o)));
    }

    #[test]
    fn tiny_inputs() {
        let (orders, barcodes, summary) = generate_bytes(&config(1, 0, 1));
        let parsed = parse(&orders, &barcodes);
        assert_eq!(parsed.orders, vec![(1, 1)]);
        assert_eq!(summary.customers, 1);
        assert_eq!(
            summary.duplicates, 0,
            "one order has no other order to repeat into"
        );
        assert_eq!(summary.barcode_rows, parsed.barcodes.len() as u64);
    }

    #[test]
    fn rejects_bad_configs() {
        let mut out = (Vec::new(), Vec::new());
        assert!(generate(&config(0, 1, 1), &mut out.0, &mut out.1).is_err());
        assert!(generate(&config(1, 1, 0), &mut out.0, &mut out.1).is_err());
        assert!(generate(&config(2, 1, MAX_ORDER_ID), &mut out.0, &mut out.1).is_err());
        assert!(generate(&config(1, 1, MAX_ORDER_ID), &mut out.0, &mut out.1).is_ok());
    }
}
