//! The ingest and sale rules (README: "Input files and rules", "Sales") as
//! plain Rust over in-memory maps: no SQL, no load paths, no shortcuts.
//!
//! The load's SQL (`postgres::load`) applies the same rules at scale, and
//! this is what it is held to: the property tests
//! (`functions/orders/tests/model_properties.rs`) run generated files and
//! sales through both, on every load path, and compare each line's
//! [`ProblemKind`], the counts, and everything a reader sees.

use std::collections::BTreeMap;

use super::outcome::{LoadCounts, ProblemKind, Severity, StoredAt};
use super::{Barcode, BarcodeRow, CustomerId, OrderId, OrderRow, FIRST_SALE_ORDER_ID};

/// Where a stored row came from: the file that stored it (a number the
/// caller gives each file, in load order) and its line. An order's
/// barcodes arrive in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub file: usize,
    pub line: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredOrder {
    pub customer_id: CustomerId,
    /// `None` for an order a sale created.
    pub origin: Option<Origin>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBarcode {
    pub order_id: Option<OrderId>,
    /// The line that stored it, or that sold it when a later file did; a
    /// sale leaves it as it was.
    pub origin: Origin,
    pub sold_by_sale: bool,
}

/// A file as the reader hands it over: its valid rows (each knows its
/// line), the lines it refused on their own with its reason, and how many
/// unknown header columns it ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadFile<T> {
    pub rows: Vec<T>,
    pub invalid: Vec<(u64, String)>,
    pub extra_columns: u64,
}

/// A reported line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    pub line: u64,
    pub kind: ProblemKind,
}

/// What loading one file decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOutcome {
    pub rows_read: u64,
    /// Rows that added or changed a stored order or barcode.
    pub accepted: u64,
    pub extra_columns: u64,
    /// By line.
    pub problems: Vec<LineProblem>,
}

impl FileOutcome {
    /// The report's counts: each problem counts by its severity and as a
    /// duplicate or not, but orders without barcodes count on their own;
    /// every ignored column is a warning.
    pub fn counts(&self) -> LoadCounts {
        let of = |severity| {
            self.problems
                .iter()
                .filter(|p| p.kind.severity() == severity && p.kind != ProblemKind::NoBarcodes)
                .count() as u64
        };
        LoadCounts {
            rows_read: self.rows_read,
            accepted: self.accepted,
            rejected: of(Severity::Rejected),
            duplicates: self
                .problems
                .iter()
                .filter(|p| p.kind.code().is_duplicate())
                .count() as u64,
            warnings: of(Severity::Warning) + self.extra_columns,
            orders_without_barcodes: self.without_barcodes().count() as u64,
        }
    }

    /// The orders stored without barcodes, by line.
    pub fn without_barcodes(&self) -> impl Iterator<Item = &LineProblem> {
        self.problems
            .iter()
            .filter(|p| p.kind == ProblemKind::NoBarcodes)
    }
}

/// The stored orders and barcodes, and what the rules decide about each
/// file loaded and each sale made onto them.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    orders: BTreeMap<OrderId, StoredOrder>,
    barcodes: BTreeMap<Barcode, StoredBarcode>,
    /// The key of each file that stored rows, by its number.
    keys: BTreeMap<usize, String>,
    sales: i64,
}

impl Rules {
    pub fn orders(&self) -> &BTreeMap<OrderId, StoredOrder> {
        &self.orders
    }

    pub fn barcodes(&self) -> &BTreeMap<Barcode, StoredBarcode> {
        &self.barcodes
    }

    /// Loads an orders file, numbered `file`, from `key`.
    ///
    /// The first row of an order_id in the file is its candidate; a later
    /// row with the same customer is ignored, with another one rejected.
    /// The candidate is then held against the stored order: stored with the
    /// same customer, ignored; with another, rejected; not stored, added
    /// (with a warning when no barcode names it yet).
    pub fn load_orders(
        &mut self,
        file: usize,
        key: &str,
        input: &ReadFile<OrderRow>,
    ) -> FileOutcome {
        self.keys.insert(file, key.to_owned());
        let mut outcome = FileOutcome::read(input);
        let mut candidates: BTreeMap<OrderId, &OrderRow> = BTreeMap::new();
        for row in &input.rows {
            match candidates.get(&row.order_id) {
                Some(first) if first.customer_id == row.customer_id => outcome.report(
                    row.line,
                    ProblemKind::RepeatedOrder {
                        order_id: row.order_id.get(),
                        first_line: first.line,
                    },
                ),
                Some(first) => outcome.report(
                    row.line,
                    ProblemKind::ConflictingOrder {
                        order_id: row.order_id.get(),
                        first_customer: first.customer_id.get(),
                        first_line: first.line,
                    },
                ),
                None => {
                    candidates.insert(row.order_id, row);
                }
            }
        }
        for (order_id, row) in candidates {
            let problem = match self.orders.get(&order_id) {
                Some(stored) if stored.customer_id == row.customer_id => ProblemKind::OrderStored {
                    order_id: order_id.get(),
                    stored: self.stored_at(stored.origin),
                },
                Some(stored) => ProblemKind::OrderOwned {
                    order_id: order_id.get(),
                    customer_id: stored.customer_id.get(),
                    stored: self.stored_at(stored.origin),
                },
                None => {
                    self.orders.insert(
                        order_id,
                        StoredOrder {
                            customer_id: row.customer_id,
                            origin: Some(Origin {
                                file,
                                line: row.line,
                            }),
                        },
                    );
                    outcome.accepted += 1;
                    if self.has_barcodes(order_id) {
                        continue;
                    }
                    ProblemKind::NoBarcodes
                }
            };
            outcome.report(row.line, problem);
        }
        outcome.by_line()
    }

    /// Loads a barcodes file, numbered `file`, from `key`.
    ///
    /// The first copy of a barcode in the file is its candidate; every
    /// later copy is rejected. The candidate is then held against the
    /// stored barcode: none stored, added; stored unsold and the candidate
    /// names an order, sold to it; otherwise rejected: as sold elsewhere
    /// when it is sold to another order than the copy names (a sold barcode
    /// never moves), as a duplicate when the copy would change nothing. A
    /// barcode of an order not known yet is stored with a warning.
    pub fn load_barcodes(
        &mut self,
        file: usize,
        key: &str,
        input: &ReadFile<BarcodeRow>,
    ) -> FileOutcome {
        self.keys.insert(file, key.to_owned());
        let mut outcome = FileOutcome::read(input);
        let mut candidates: BTreeMap<&Barcode, &BarcodeRow> = BTreeMap::new();
        for row in &input.rows {
            match candidates.get(&row.barcode) {
                Some(first) => outcome.report(
                    row.line,
                    ProblemKind::RepeatedBarcode {
                        first_line: first.line,
                    },
                ),
                None => {
                    candidates.insert(&row.barcode, row);
                }
            }
        }
        for (barcode, row) in candidates {
            let origin = Origin {
                file,
                line: row.line,
            };
            match self.barcodes.get(barcode) {
                None => {
                    self.barcodes.insert(
                        barcode.clone(),
                        StoredBarcode {
                            order_id: row.order_id,
                            origin,
                            sold_by_sale: false,
                        },
                    );
                }
                Some(stored) if stored.order_id.is_none() && row.order_id.is_some() => {
                    let stored = self.barcodes.get_mut(barcode).expect("just found");
                    stored.order_id = row.order_id;
                    stored.origin = origin;
                }
                Some(stored) => {
                    // A copy naming the order that holds it moves nothing:
                    // a plain duplicate, like any copy of an unsold one.
                    let problem = match stored.order_id.filter(|&o| row.order_id != Some(o)) {
                        Some(order_id) => ProblemKind::BarcodeSold {
                            order_id: order_id.get(),
                            stored: self.stored_at(Some(stored.origin)),
                        },
                        None => ProblemKind::BarcodeStored {
                            stored: self.stored_at(Some(stored.origin)),
                        },
                    };
                    outcome.report(row.line, problem);
                    continue;
                }
            }
            outcome.accepted += 1;
            if let Some(order_id) = row.order_id.filter(|o| !self.orders.contains_key(o)) {
                outcome.report(
                    row.line,
                    ProblemKind::UnknownOrder {
                        order_id: order_id.get(),
                    },
                );
            }
        }
        outcome.by_line()
    }

    /// Sells the `tickets` lowest unused barcodes (in code order) to a new
    /// order of `customer_id`, numbered from [`FIRST_SALE_ORDER_ID`] up;
    /// `None`, selling nothing, when fewer are unused.
    pub fn sell(
        &mut self,
        customer_id: CustomerId,
        tickets: usize,
    ) -> Option<(OrderId, Vec<Barcode>)> {
        let codes: Vec<Barcode> = self.unused_barcodes().take(tickets).cloned().collect();
        if codes.len() < tickets {
            return None;
        }
        let order_id = OrderId::from_trusted(FIRST_SALE_ORDER_ID + self.sales);
        self.sales += 1;
        self.orders.insert(
            order_id,
            StoredOrder {
                customer_id,
                origin: None,
            },
        );
        for code in &codes {
            let stored = self.barcodes.get_mut(code).expect("picked from the map");
            stored.order_id = Some(order_id);
            stored.sold_by_sale = true;
        }
        Some((order_id, codes))
    }

    /// The barcodes no order holds, in code (byte) order.
    pub fn unused_barcodes(&self) -> impl Iterator<Item = &Barcode> {
        self.barcodes
            .iter()
            .filter(|(_, stored)| stored.order_id.is_none())
            .map(|(code, _)| code)
    }

    /// Tickets per customer: the barcodes of known orders.
    pub fn customer_tickets(&self) -> BTreeMap<CustomerId, i64> {
        let mut tickets = BTreeMap::new();
        for stored in self.barcodes.values() {
            if let Some(order) = stored.order_id.and_then(|o| self.orders.get(&o)) {
                *tickets.entry(order.customer_id).or_insert(0) += 1;
            }
        }
        tickets
    }

    /// The `limit` customers with most tickets, ties by lower customer_id.
    pub fn top_customers(&self, limit: usize) -> Vec<(CustomerId, i64)> {
        let mut top: Vec<(CustomerId, i64)> = self.customer_tickets().into_iter().collect();
        top.sort_by_key(|&(customer, tickets)| (-tickets, customer));
        top.truncate(limit);
        top
    }

    /// processed_orders.csv's rows: every known order that has barcodes, by
    /// order_id, its barcodes in arrival order. Orders without barcodes and
    /// barcodes of unknown orders are left out.
    pub fn processed_orders(&self) -> Vec<super::ProcessedOrder> {
        let mut by_order: BTreeMap<OrderId, Vec<(Origin, &Barcode)>> = BTreeMap::new();
        for (code, stored) in &self.barcodes {
            if let Some(order_id) = stored.order_id.filter(|o| self.orders.contains_key(o)) {
                by_order
                    .entry(order_id)
                    .or_default()
                    .push((stored.origin, code));
            }
        }
        by_order
            .into_iter()
            .map(|(order_id, mut barcodes)| {
                barcodes.sort();
                super::ProcessedOrder {
                    customer_id: self.orders[&order_id].customer_id,
                    order_id,
                    barcodes: barcodes.into_iter().map(|(_, c)| c.clone()).collect(),
                }
            })
            .collect()
    }

    fn has_barcodes(&self, order_id: OrderId) -> bool {
        self.barcodes
            .values()
            .any(|stored| stored.order_id == Some(order_id))
    }

    /// How a reason names a stored row: its file's key and line.
    fn stored_at(&self, origin: Option<Origin>) -> StoredAt {
        StoredAt {
            file: origin.and_then(|o| self.keys.get(&o.file).cloned()),
            line: origin.map(|o| o.line),
        }
    }
}

impl FileOutcome {
    /// The outcome of reading: every line read, the refused ones reported.
    fn read<T>(input: &ReadFile<T>) -> Self {
        Self {
            rows_read: (input.rows.len() + input.invalid.len()) as u64,
            accepted: 0,
            extra_columns: input.extra_columns,
            problems: input
                .invalid
                .iter()
                .map(|(line, reason)| LineProblem {
                    line: *line,
                    kind: ProblemKind::Invalid {
                        reason: reason.clone(),
                    },
                })
                .collect(),
        }
    }

    fn report(&mut self, line: u64, kind: ProblemKind) {
        self.problems.push(LineProblem { line, kind });
    }

    fn by_line(mut self) -> Self {
        self.problems.sort_by_key(|p| (p.line, p.kind.code()));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(line: u64, order_id: i64, customer_id: i64) -> OrderRow {
        OrderRow {
            line,
            order_id: OrderId::from_trusted(order_id),
            customer_id: CustomerId::from_trusted(customer_id),
        }
    }

    fn barcode(line: u64, code: &str, order_id: Option<i64>) -> BarcodeRow {
        BarcodeRow {
            line,
            barcode: Barcode::parse(code).expect("a valid code"),
            order_id: order_id.map(OrderId::from_trusted),
        }
    }

    fn file<T>(rows: Vec<T>) -> ReadFile<T> {
        ReadFile {
            rows,
            invalid: Vec::new(),
            extra_columns: 0,
        }
    }

    fn kinds(outcome: &FileOutcome) -> Vec<(u64, String)> {
        outcome
            .problems
            .iter()
            .map(|p| (p.line, p.kind.reason()))
            .collect()
    }

    #[test]
    fn the_first_copy_of_a_barcode_wins_and_a_sold_one_never_moves() {
        let mut rules = Rules::default();
        rules.load_orders(0, "o.csv", &file(vec![order(2, 1, 10), order(3, 2, 20)]));
        let first = rules.load_barcodes(
            1,
            "b.csv",
            &file(vec![barcode(2, "A", Some(1)), barcode(3, "A", Some(2))]),
        );
        assert_eq!(
            kinds(&first),
            [(
                3,
                "duplicate barcode: first seen on line 2; the first occurrence wins".to_owned()
            )]
        );
        let again = rules.load_barcodes(2, "c.csv", &file(vec![barcode(2, "A", Some(2))]));
        assert_eq!(
            kinds(&again),
            [(
                2,
                "barcode already sold to order 1 (b.csv line 2); a sold barcode never moves"
                    .to_owned()
            )]
        );
        assert_eq!(again.counts().rejected, 1);
        assert_eq!(again.counts().duplicates, 1);
        // A copy naming the order that holds it moves nothing: a duplicate.
        let same = rules.load_barcodes(3, "d.csv", &file(vec![barcode(2, "A", Some(1))]));
        assert_eq!(
            kinds(&same),
            [(
                2,
                "duplicate barcode: already stored from b.csv line 2; the first occurrence wins"
                    .to_owned()
            )]
        );
        assert_eq!(
            rules.barcodes()[&Barcode::parse("A").unwrap()].origin.file,
            1
        );
    }

    #[test]
    fn an_unsold_barcode_is_sold_by_a_later_file_and_then_by_no_sale() {
        let mut rules = Rules::default();
        rules.load_barcodes(
            0,
            "b.csv",
            &file(vec![barcode(2, "A", None), barcode(3, "B", None)]),
        );
        let sold = rules.load_barcodes(1, "s.csv", &file(vec![barcode(2, "A", Some(7))]));
        assert_eq!(sold.accepted, 1);
        assert_eq!(
            kinds(&sold),
            [(
                2,
                "order 7 is not known yet; the barcode is stored and counts once the order arrives"
                    .to_owned()
            )]
        );
        let (order_id, codes) = rules
            .sell(CustomerId::from_trusted(5), 1)
            .expect("one is left");
        assert_eq!(order_id.get(), FIRST_SALE_ORDER_ID);
        assert_eq!(codes, [Barcode::parse("B").unwrap()]);
        assert_eq!(rules.sell(CustomerId::from_trusted(5), 1), None);
    }

    #[test]
    fn orders_repeat_or_conflict_in_the_file_and_then_against_the_stored_order() {
        let mut rules = Rules::default();
        rules.load_orders(0, "a.csv", &file(vec![order(2, 1, 11)]));
        let outcome = rules.load_orders(
            1,
            "b.csv",
            &file(vec![
                order(2, 1, 10),
                order(3, 1, 11),
                order(4, 2, 3),
                order(5, 2, 3),
            ]),
        );
        assert_eq!(
            kinds(&outcome),
            [
                (
                    2,
                    "order 1 already belongs to customer 11 (a.csv line 2); history is never rewritten"
                        .to_owned()
                ),
                (
                    3,
                    "order 1 already belongs to customer 10 (line 2); a conflicting customer is rejected"
                        .to_owned()
                ),
                (
                    4,
                    "order has no barcodes (yet): stored, but left out of processed_orders.csv and ticket counts"
                        .to_owned()
                ),
                (5, "order 2 repeats line 4 with the same customer; ignored".to_owned()),
            ]
        );
        let counts = outcome.counts();
        assert_eq!(
            (
                counts.accepted,
                counts.rejected,
                counts.duplicates,
                counts.warnings,
                counts.orders_without_barcodes
            ),
            (1, 2, 3, 0, 1)
        );
    }

    #[test]
    fn processed_orders_leave_out_orders_without_barcodes_and_keep_arrival_order() {
        let mut rules = Rules::default();
        rules.load_barcodes(
            0,
            "b.csv",
            &file(vec![barcode(2, "Z", Some(1)), barcode(3, "A", Some(1))]),
        );
        rules.load_orders(1, "o.csv", &file(vec![order(2, 1, 10), order(3, 2, 10)]));
        let processed = rules.processed_orders();
        assert_eq!(processed.len(), 1);
        assert_eq!(
            processed[0].barcodes,
            [Barcode::parse("Z").unwrap(), Barcode::parse("A").unwrap()]
        );
        assert_eq!(rules.top_customers(10), [(CustomerId::from_trusted(10), 2)]);
    }
}
