//! The reference model: the rules as the pipeline states them in Rust
//! (`order_pipeline::domain::rules`), plus what the tests need around them:
//! the files as the generator writes them, the few counters that are
//! history rather than state, and everything a reader sees, derived from
//! the rules' two maps, so the pipeline's maintained aggregates are checked
//! against a recount.

use std::collections::BTreeMap;

use order_pipeline::domain::outcome::{
    LedgerStatus, LoadCounts, ProblemCode, FIRST_ORDERS_WITHOUT_BARCODES,
};
use order_pipeline::domain::rules::{FileOutcome, ReadFile, Rules, StoredBarcode, StoredOrder};
use order_pipeline::domain::{Barcode, BarcodeRow, CustomerId, OrderId, OrderRow};
use order_pipeline::postgres::read_model::analytics::{LastIngestion, Summary};

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

/// A reported line, compared by its case and its reason. The reason of an
/// invalid row is the reader's, which the model does not know: `None`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reported {
    pub line: u64,
    pub code: ProblemCode,
    pub reason: Option<String>,
}

impl Reported {
    pub fn new(line: u64, code: ProblemCode, reason: String) -> Self {
        Self {
            line,
            code,
            reason: (code != ProblemCode::Invalid).then_some(reason),
        }
    }
}

/// The outcome of an upload: its counts and every reported line, by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Loaded {
        counts: LoadCounts,
        problems: Vec<Reported>,
        /// The lines of the first orders without barcodes the report names.
        first_without_barcodes: Vec<u64>,
    },
    Rejected,
}

impl Outcome {
    /// The report of `outcome`: orders without barcodes are a figure and
    /// their first lines, not problems.
    fn loaded(outcome: &FileOutcome) -> Self {
        Outcome::Loaded {
            counts: outcome.counts(),
            problems: reported(
                outcome
                    .problems
                    .iter()
                    .filter(|p| p.kind.code() != ProblemCode::NoBarcodes)
                    .map(|p| (p.line, p.kind.code(), p.kind.reason())),
            ),
            first_without_barcodes: outcome
                .without_barcodes()
                .take(FIRST_ORDERS_WITHOUT_BARCODES)
                .map(|p| p.line)
                .collect(),
        }
    }
}

/// Everything the model promises a reader sees.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    pub orders: BTreeMap<OrderId, StoredOrder>,
    pub barcodes: BTreeMap<Barcode, StoredBarcode>,
    /// Customers with at least one ticket.
    pub customer_tickets: BTreeMap<CustomerId, i64>,
    /// Most tickets first, ties by lower customer_id.
    pub top_customers: Vec<(CustomerId, i64)>,
    /// In code (byte) order.
    pub unused_barcodes: Vec<Barcode>,
    /// Sold to orders not stored (yet), with that order, in code order.
    pub waiting_barcodes: Vec<(Barcode, i64)>,
    /// `GET /analytics/summary`, less what the model cannot know: the
    /// last ingestion's ledger id and time (see [`without_ids_and_times`]).
    pub summary: serde_json::Value,
    pub processed_orders_csv: String,
}

/// The rules' state and the counters a summary shows.
#[derive(Debug, Clone, Default)]
pub struct Model {
    rules: Rules,
    rejected_rows: i64,
    data_version: i64,
    last_ingestion: Option<(String, LedgerStatus)>,
}

impl Model {
    /// Loads one uploaded file (a new object version, numbered `upload`)
    /// under `key`.
    pub fn upload(&mut self, upload: usize, key: &str, input: &Input) -> Outcome {
        let outcome = match input {
            Input::Unreadable => {
                self.last_ingestion = Some((key.to_owned(), LedgerStatus::Rejected));
                return Outcome::Rejected;
            }
            Input::Orders {
                lines,
                extra_columns,
            } => {
                let file = read(lines, *extra_columns, |line, row| OrderRow {
                    line,
                    order_id: OrderId::from_trusted(row.order_id),
                    customer_id: CustomerId::from_trusted(row.customer_id),
                });
                self.rules.load_orders(upload, key, &file)
            }
            Input::Barcodes {
                lines,
                extra_columns,
            } => {
                let file = read(lines, *extra_columns, |line, row| BarcodeRow {
                    line,
                    barcode: Barcode::parse(&row.barcode).expect("the generator's codes are valid"),
                    order_id: row.order_id.map(OrderId::from_trusted),
                });
                self.rules.load_barcodes(upload, key, &file)
            }
        };
        let counts = outcome.counts();
        self.rejected_rows += counts.rejected as i64;
        if counts.accepted > 0 {
            self.data_version += 1;
        }
        self.last_ingestion = Some((key.to_owned(), LedgerStatus::Loaded));
        Outcome::loaded(&outcome)
    }

    /// Sells `tickets` to a new order of `customer_id`: its id and codes,
    /// or `None` when fewer are unused.
    pub fn sell(&mut self, customer_id: i64, tickets: usize) -> Option<(i64, Vec<String>)> {
        let (order_id, codes) = self
            .rules
            .sell(CustomerId::from_trusted(customer_id), tickets)?;
        self.data_version += 1;
        Some((
            order_id.get(),
            codes.iter().map(|c| c.as_str().to_owned()).collect(),
        ))
    }

    /// Everything a reader sees now.
    pub fn view(&self) -> View {
        let customer_tickets = self.rules.customer_tickets();
        let unused_barcodes: Vec<Barcode> = self.rules.unused_barcodes().cloned().collect();
        let summary = Summary {
            orders: self.rules.orders().len() as i64,
            customers: customer_tickets.len() as i64,
            tickets: customer_tickets.values().sum(),
            barcodes: self.rules.barcodes().len() as i64,
            unused_barcodes: unused_barcodes.len() as i64,
            rejected_rows: self.rejected_rows,
            data_version: self.data_version,
            last_ingestion: self
                .last_ingestion
                .clone()
                .map(|(key, status)| LastIngestion {
                    id: 0,
                    key,
                    status,
                    finished_at: None,
                }),
        };
        View {
            orders: self.rules.orders().clone(),
            barcodes: self.rules.barcodes().clone(),
            customer_tickets,
            top_customers: self.rules.top_customers(MAX_TOP_CUSTOMERS),
            unused_barcodes,
            waiting_barcodes: self
                .rules
                .barcodes()
                .iter()
                .filter_map(|(code, stored)| {
                    let order_id = stored.order_id?;
                    (!self.rules.orders().contains_key(&order_id))
                        .then(|| (code.clone(), order_id.get()))
                })
                .collect(),
            summary: without_ids_and_times(serde_json::to_value(summary).expect("JSON")),
            processed_orders_csv: processed_orders_csv(&self.rules),
        }
    }
}

/// The most customers `GET /analytics/top-customers` lists (`limit=100`).
pub const MAX_TOP_CUSTOMERS: usize = 100;

/// processed_orders.csv as README shows it (written here, not by the
/// pipeline's writer, so the format is checked too): a header, then
/// `customer_id,order_id,[b1, b2]`, the list quoted when it holds a comma.
fn processed_orders_csv(rules: &Rules) -> String {
    let mut csv = String::from("customer_id,order_id,barcodes\n");
    for order in rules.processed_orders() {
        let codes: Vec<&str> = order.barcodes.iter().map(Barcode::as_str).collect();
        let list = format!("[{}]", codes.join(", "));
        let list = if codes.len() > 1 {
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

/// A file's lines (the header is line 1) as the reader hands them to the
/// rules: the valid rows with their line numbers, the invalid lines (with
/// no reason: the model does not know the reader's), blank lines skipped.
fn read<L, R>(lines: &[Line<L>], extra_columns: u64, row: impl Fn(u64, &L) -> R) -> ReadFile<R> {
    let mut file = ReadFile {
        rows: Vec::new(),
        invalid: Vec::new(),
        extra_columns,
    };
    for (content, line) in lines.iter().zip(2u64..) {
        match content {
            Line::Valid(valid) => file.rows.push(row(line, valid)),
            Line::Invalid => file.invalid.push((line, String::new())),
            Line::Blank => {}
        }
    }
    file
}

/// Reads a report's problems in the model's terms, by line.
pub fn reported(problems: impl IntoIterator<Item = (u64, ProblemCode, String)>) -> Vec<Reported> {
    let mut reported: Vec<Reported> = problems
        .into_iter()
        .map(|(line, code, reason)| Reported::new(line, code, reason))
        .collect();
    reported.sort();
    reported
}

/// A summary as JSON without the last ingestion's ledger id and finish
/// time, which the model cannot know.
pub fn without_ids_and_times(mut summary: serde_json::Value) -> serde_json::Value {
    if let Some(last) = summary["last_ingestion"].as_object_mut() {
        last.remove("id");
        last.remove("finished_at");
    }
    summary
}
