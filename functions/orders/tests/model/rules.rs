//! The reference model: README's rules ("Input files and rules", "Sales")
//! as plain Rust over in-memory maps, with no SQL, no load paths and no
//! shortcuts. Everything a reader can see (tables, aggregates, the API's
//! analytics, processed_orders.csv) is derived from its two maps, so the
//! pipeline's maintained aggregates are checked against a recount.

use std::collections::BTreeMap;

/// The first order id of the sales range (`domain::FIRST_SALE_ORDER_ID`):
/// sales take ids from here up, one after the other.
pub const FIRST_SALE_ORDER_ID: i64 = 9_000_000_000_000_000_000;

/// Where a stored row came from: the upload (its label, in upload order)
/// and the line of that file. Barcodes of an order arrive in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub upload: usize,
    pub line: u64,
}

/// One line of a file after the header, as the reader classifies it: a
/// valid row, one rejected on its own (bad id, bad barcode, wrong field
/// count, an unterminated quote, …), or a blank line, which is no row but
/// still has its line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<T> {
    Valid(T),
    Invalid,
    Blank,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLine {
    pub order_id: i64,
    pub customer_id: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarcodeLine {
    pub barcode: String,
    pub order_id: Option<i64>,
}

/// A file as the model reads it. Data lines start at line 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Orders {
        lines: Vec<Line<OrderLine>>,
        extra_columns: u64,
    },
    Barcodes {
        lines: Vec<Line<BarcodeLine>>,
        extra_columns: u64,
    },
    /// Cannot be read at all (a header and no rows): rejected whole.
    Unreadable,
}

/// What loading one file did, as its report counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub rows_read: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub warnings: u64,
}

/// The outcome of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Loaded(Counts),
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredOrder {
    pub customer_id: i64,
    /// `None` for an order a sale created.
    pub origin: Option<Origin>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBarcode {
    pub order_id: Option<i64>,
    /// The file line that stored it, or that sold it when a later file did;
    /// a sale leaves it as it was.
    pub origin: Origin,
    pub sold_by_sale: bool,
}

/// One line of processed_orders.csv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessedOrder {
    pub customer_id: i64,
    pub order_id: i64,
    pub barcodes: Vec<String>,
}

/// `GET /analytics/summary`, less its timestamps and ledger id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    pub orders: i64,
    pub customers: i64,
    pub tickets: i64,
    pub barcodes: i64,
    pub unused_barcodes: i64,
    pub rejected_rows: i64,
    pub data_version: i64,
    /// The newest ledger row's key and status.
    pub last_ingestion: Option<(String, String)>,
}

/// Everything the model promises a reader sees.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    pub orders: BTreeMap<i64, StoredOrder>,
    pub barcodes: BTreeMap<String, StoredBarcode>,
    /// Customers with at least one ticket.
    pub customer_tickets: BTreeMap<i64, i64>,
    /// Most tickets first, ties by lower customer_id.
    pub top_customers: Vec<(i64, i64)>,
    /// In code (byte) order.
    pub unused_barcodes: Vec<String>,
    pub summary: Summary,
    pub processed_orders_csv: String,
}

/// The rules' state: the stored orders and barcodes, and the few counters
/// that are history rather than state.
#[derive(Debug, Clone, Default)]
pub struct Model {
    orders: BTreeMap<i64, StoredOrder>,
    barcodes: BTreeMap<String, StoredBarcode>,
    rejected_rows: i64,
    data_version: i64,
    sales: i64,
    last_ingestion: Option<(String, String)>,
}

impl Model {
    /// Loads one uploaded file (a new object version) under `key`.
    pub fn upload(&mut self, upload: usize, key: &str, input: &Input) -> Outcome {
        let counts = match input {
            Input::Unreadable => {
                self.last_ingestion = Some((key.to_owned(), "rejected".to_owned()));
                return Outcome::Rejected;
            }
            Input::Orders {
                lines,
                extra_columns,
            } => self.load_orders(upload, lines, *extra_columns),
            Input::Barcodes {
                lines,
                extra_columns,
            } => self.load_barcodes(upload, lines, *extra_columns),
        };
        self.rejected_rows += counts.rejected as i64;
        if counts.accepted > 0 {
            self.data_version += 1;
        }
        self.last_ingestion = Some((key.to_owned(), "loaded".to_owned()));
        Outcome::Loaded(counts)
    }

    /// The first row of an order_id in the file is its candidate; a later
    /// row with the same customer is ignored, with another one rejected.
    /// The candidate is then held against the stored order: stored with the
    /// same customer, ignored; with another, rejected; not stored, added.
    fn load_orders(&mut self, upload: usize, lines: &[Line<OrderLine>], extra: u64) -> Counts {
        let (mut counts, rows) = read(lines, extra);
        let mut candidates: BTreeMap<i64, (u64, i64)> = BTreeMap::new();
        for (line, row) in rows {
            match candidates.get(&row.order_id) {
                Some(&(_, first_customer)) => {
                    counts.duplicates += 1;
                    counts.rejected += u64::from(first_customer != row.customer_id);
                }
                None => {
                    candidates.insert(row.order_id, (line, row.customer_id));
                }
            }
        }
        for (order_id, (line, customer_id)) in candidates {
            match self.orders.get(&order_id) {
                Some(stored) => {
                    counts.duplicates += 1;
                    counts.rejected += u64::from(stored.customer_id != customer_id);
                }
                None => {
                    self.orders.insert(
                        order_id,
                        StoredOrder {
                            customer_id,
                            origin: Some(Origin { upload, line }),
                        },
                    );
                    counts.accepted += 1;
                    counts.warnings += u64::from(!self.has_barcodes(order_id));
                }
            }
        }
        counts
    }

    /// The first copy of a barcode in the file is its candidate; every
    /// later copy is rejected. The candidate is then held against the
    /// stored barcode: none stored, added; stored unsold and the candidate
    /// names an order, sold to it; otherwise rejected (a sold barcode never
    /// moves, and an unsold copy changes nothing).
    fn load_barcodes(&mut self, upload: usize, lines: &[Line<BarcodeLine>], extra: u64) -> Counts {
        let (mut counts, rows) = read(lines, extra);
        let mut candidates: BTreeMap<&str, (u64, Option<i64>)> = BTreeMap::new();
        for (line, row) in rows {
            if candidates.contains_key(row.barcode.as_str()) {
                counts.rejected += 1;
                counts.duplicates += 1;
            } else {
                candidates.insert(&row.barcode, (line, row.order_id));
            }
        }
        for (barcode, (line, order_id)) in candidates {
            let origin = Origin { upload, line };
            match self.barcodes.get_mut(barcode) {
                None => {
                    self.barcodes.insert(
                        barcode.to_owned(),
                        StoredBarcode {
                            order_id,
                            origin,
                            sold_by_sale: false,
                        },
                    );
                }
                Some(stored) if stored.order_id.is_none() && order_id.is_some() => {
                    stored.order_id = order_id;
                    stored.origin = origin;
                }
                Some(_) => {
                    counts.rejected += 1;
                    counts.duplicates += 1;
                    continue;
                }
            }
            counts.accepted += 1;
            // A barcode of an order not known yet is stored with a warning.
            counts.warnings += u64::from(order_id.is_some_and(|o| !self.orders.contains_key(&o)));
        }
        counts
    }

    /// Sells the `tickets` lowest unused barcodes to a new order of
    /// `customer_id`; `None`, selling nothing, when fewer are unused.
    /// Returns the new order's id and the barcodes it holds.
    pub fn sell(&mut self, customer_id: i64, tickets: usize) -> Option<(i64, Vec<String>)> {
        let codes: Vec<String> = self
            .barcodes
            .iter()
            .filter(|(_, stored)| stored.order_id.is_none())
            .map(|(code, _)| code.clone())
            .take(tickets)
            .collect();
        if codes.len() < tickets {
            return None;
        }
        let order_id = FIRST_SALE_ORDER_ID + self.sales;
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
        self.data_version += 1;
        Some((order_id, codes))
    }

    fn has_barcodes(&self, order_id: i64) -> bool {
        self.barcodes
            .values()
            .any(|stored| stored.order_id == Some(order_id))
    }

    /// Tickets per customer: the barcodes of known orders.
    fn customer_tickets(&self) -> BTreeMap<i64, i64> {
        let mut tickets = BTreeMap::new();
        for stored in self.barcodes.values() {
            if let Some(order) = stored.order_id.and_then(|o| self.orders.get(&o)) {
                *tickets.entry(order.customer_id).or_insert(0) += 1;
            }
        }
        tickets
    }

    /// Every known order that has barcodes, by order_id, its barcodes in
    /// arrival order.
    pub fn processed_orders(&self) -> Vec<ProcessedOrder> {
        let mut by_order: BTreeMap<i64, Vec<(Origin, &str)>> = BTreeMap::new();
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
                ProcessedOrder {
                    customer_id: self.orders[&order_id].customer_id,
                    order_id,
                    barcodes: barcodes.into_iter().map(|(_, c)| c.to_owned()).collect(),
                }
            })
            .collect()
    }

    /// Everything a reader sees now.
    pub fn view(&self) -> View {
        let customer_tickets = self.customer_tickets();
        let mut top_customers: Vec<(i64, i64)> =
            customer_tickets.iter().map(|(&c, &t)| (c, t)).collect();
        top_customers.sort_by_key(|&(customer, tickets)| (-tickets, customer));
        top_customers.truncate(MAX_TOP_CUSTOMERS);
        let unused_barcodes: Vec<String> = self
            .barcodes
            .iter()
            .filter(|(_, stored)| stored.order_id.is_none())
            .map(|(code, _)| code.clone())
            .collect();
        let summary = Summary {
            orders: self.orders.len() as i64,
            customers: customer_tickets.len() as i64,
            tickets: customer_tickets.values().sum(),
            barcodes: self.barcodes.len() as i64,
            unused_barcodes: unused_barcodes.len() as i64,
            rejected_rows: self.rejected_rows,
            data_version: self.data_version,
            last_ingestion: self.last_ingestion.clone(),
        };
        View {
            orders: self.orders.clone(),
            barcodes: self.barcodes.clone(),
            customer_tickets,
            top_customers,
            unused_barcodes,
            summary,
            processed_orders_csv: processed_orders_csv(&self.processed_orders()),
        }
    }
}

/// The most customers `GET /analytics/top-customers` lists (`limit=100`).
pub const MAX_TOP_CUSTOMERS: usize = 100;

/// processed_orders.csv as README shows it: a header, then
/// `customer_id,order_id,[b1, b2]`, the list quoted when it holds a comma.
pub fn processed_orders_csv(orders: &[ProcessedOrder]) -> String {
    let mut csv = String::from("customer_id,order_id,barcodes\n");
    for order in orders {
        let list = format!("[{}]", order.barcodes.join(", "));
        let list = if order.barcodes.len() > 1 {
            format!("\"{list}\"")
        } else {
            list
        };
        csv.push_str(&format!(
            "{},{},{list}\n",
            order.customer_id, order.order_id
        ));
    }
    csv
}

/// Reads a file's lines (the header is line 1): the valid rows with their
/// line numbers, and the counts so far (rows read, invalid ones rejected,
/// a warning per ignored extra column).
fn read<T>(lines: &[Line<T>], extra_columns: u64) -> (Counts, Vec<(u64, &T)>) {
    let mut counts = Counts {
        warnings: extra_columns,
        ..Counts::default()
    };
    let mut valid = Vec::new();
    for (row, line) in lines.iter().zip(2u64..) {
        match row {
            Line::Valid(row) => valid.push((line, row)),
            Line::Invalid => counts.rejected += 1,
            Line::Blank => continue,
        }
        counts.rows_read += 1;
    }
    (counts, valid)
}
