//! What a generated sequence does, one step at a time: upload a file (a new
//! version of one of a few keys), deliver an earlier upload's event again,
//! or sell tickets. Files are rendered to CSV text here, hostile rows and
//! header variants included, and each knows how the model reads it.

use proptest::prelude::*;

use super::rules::{BarcodeLine, Input, Line, OrderLine};

#[derive(Debug, Clone)]
pub enum Step {
    /// Puts `file` at `incoming/f<key>.csv` (a new version when the key
    /// holds one already) and ingests it.
    Upload { key: u8, file: File },
    /// Delivers the event of an earlier upload (the `n`-th, modulo how many
    /// there were) again: nothing changes.
    Redeliver { upload: usize },
    /// `POST /orders`.
    Sell { customer_id: i64, tickets: usize },
}

impl Step {
    pub fn key(key: u8) -> String {
        format!("incoming/f{key}.csv")
    }

    /// An upload of `rows` as a plain file of `kind`, for the named cases.
    pub fn upload(key: u8, kind: Kind, rows: Vec<Row>) -> Self {
        Step::Upload {
            key,
            file: File {
                kind,
                header: Header::Plain,
                crlf: false,
                rows,
            },
        }
    }
}

impl Row {
    pub fn order(order_id: i64, customer_id: i64) -> Self {
        Row::Order {
            order_id,
            customer_id,
            style: Style::Plain,
        }
    }

    pub fn barcode(barcode: &'static str, order_id: Option<i64>) -> Self {
        Row::Barcode {
            barcode,
            order_id,
            style: Style::Plain,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Orders,
    Barcodes,
}

/// How the header is written: every variant names the same columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Plain,
    /// The two columns the other way round.
    Swapped,
    /// A BOM, capitals and spaces around the names.
    Shouting,
    /// An unknown third column, reported and ignored.
    ExtraColumn,
}

/// How a valid field is written; all read as the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Padded,
}

/// A row the reader must reject on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// The first column (order_id, or the barcode) holds this.
    BadFirst(&'static str),
    /// The second column (customer_id, or the barcode's order_id) holds this.
    BadSecond(&'static str),
    /// One field fewer than the header names.
    MissingField,
    /// A quote opened and never closed: the line is cut and reading
    /// resumes at the next one (no later line of the file has a quote).
    UnterminatedQuote,
}

#[derive(Debug, Clone)]
pub enum Row {
    Order {
        order_id: i64,
        customer_id: i64,
        style: Style,
    },
    Barcode {
        barcode: &'static str,
        order_id: Option<i64>,
        style: Style,
    },
    Hostile(Hostile),
    /// An empty line: no row.
    Blank,
}

#[derive(Debug, Clone)]
pub struct File {
    pub kind: Kind,
    pub header: Header,
    pub crlf: bool,
    /// None (or blank lines only): a header alone, which rejects the file
    /// whole.
    pub rows: Vec<Row>,
}

impl File {
    /// The CSV text.
    pub fn render(&self) -> String {
        let names = match self.kind {
            Kind::Orders => ["order_id", "customer_id"],
            Kind::Barcodes => ["barcode", "order_id"],
        };
        let header = match self.header {
            Header::Plain => names.join(","),
            Header::Swapped => format!("{},{}", names[1], names[0]),
            Header::Shouting => format!(
                "\u{feff} {} , {} ",
                names[0].to_uppercase(),
                names[1].to_uppercase()
            ),
            Header::ExtraColumn => format!("{},{},note", names[0], names[1]),
        };
        let newline = if self.crlf { "\r\n" } else { "\n" };
        let mut text = header + newline;
        for row in &self.rows {
            text.push_str(&self.render_row(row));
            text.push_str(newline);
        }
        text
    }

    fn render_row(&self, row: &Row) -> String {
        let (first, second) = match row {
            Row::Order {
                order_id,
                customer_id,
                style,
            } => (
                styled(&order_id.to_string(), *style),
                styled(&customer_id.to_string(), *style),
            ),
            Row::Barcode {
                barcode,
                order_id,
                style,
            } => (
                styled(barcode, *style),
                order_id.map_or(String::new(), |o| styled(&o.to_string(), *style)),
            ),
            Row::Hostile(Hostile::BadFirst(value)) => (value.to_string(), "1".to_owned()),
            Row::Hostile(Hostile::BadSecond(value)) => (self.valid_first(), value.to_string()),
            Row::Hostile(Hostile::MissingField) => {
                let mut fields = vec![self.valid_first()];
                if self.header == Header::ExtraColumn {
                    fields.push("1".to_owned());
                }
                return fields.join(",");
            }
            Row::Hostile(Hostile::UnterminatedQuote) => {
                (format!("\"{}", self.valid_first()), "1".to_owned())
            }
            Row::Blank => return String::new(),
        };
        let mut fields = match self.header {
            Header::Swapped => vec![second, first],
            _ => vec![first, second],
        };
        if self.header == Header::ExtraColumn {
            fields.push("x".to_owned());
        }
        fields.join(",")
    }

    /// A valid first column for a hostile row whose fault is elsewhere.
    fn valid_first(&self) -> String {
        match self.kind {
            Kind::Orders => "1".to_owned(),
            Kind::Barcodes => BARCODES[0].to_owned(),
        }
    }

    /// The file as the model reads it.
    pub fn input(&self) -> Input {
        if self.rows.iter().all(|row| matches!(row, Row::Blank)) {
            return Input::Unreadable;
        }
        let extra_columns = u64::from(self.header == Header::ExtraColumn);
        match self.kind {
            Kind::Orders => Input::Orders {
                lines: self.lines(|row| match row {
                    Row::Order {
                        order_id,
                        customer_id,
                        ..
                    } => Some(OrderLine {
                        order_id: *order_id,
                        customer_id: *customer_id,
                    }),
                    _ => None,
                }),
                extra_columns,
            },
            Kind::Barcodes => Input::Barcodes {
                lines: self.lines(|row| match row {
                    Row::Barcode {
                        barcode, order_id, ..
                    } => Some(BarcodeLine {
                        barcode: barcode.to_string(),
                        order_id: *order_id,
                    }),
                    _ => None,
                }),
                extra_columns,
            },
        }
    }

    fn lines<T>(&self, valid: impl Fn(&Row) -> Option<T>) -> Vec<Line<T>> {
        self.rows
            .iter()
            .map(|row| match row {
                Row::Blank => Line::Blank,
                row => valid(row).map_or(Line::Invalid, Line::Valid),
            })
            .collect()
    }

    /// After a quote that never closes, no line may hold a quote (it would
    /// close it): the valid rows there are written padded instead, and a
    /// second unterminated quote becomes a missing field.
    fn without_quotes_after_an_open_one(mut self) -> Self {
        let mut open = false;
        for row in &mut self.rows {
            match row {
                Row::Hostile(hostile @ Hostile::UnterminatedQuote) => {
                    if open {
                        *hostile = Hostile::MissingField;
                    }
                    open = true;
                }
                Row::Order { style, .. } | Row::Barcode { style, .. }
                    if open && *style == Style::Quoted =>
                {
                    *style = Style::Padded
                }
                _ => {}
            }
        }
        self
    }
}

fn styled(value: &str, style: Style) -> String {
    match style {
        Style::Plain => value.to_owned(),
        Style::Quoted => format!("\"{value}\""),
        Style::Padded => format!(" {value} "),
    }
}

/// Few codes, so that files collide often; in byte order they are not in
/// the order written, and two differ only by leading zeros.
pub const BARCODES: [&str; 10] = [
    "B_3", "0007", "a1", "-1", "Z.9", "07", "A1", "_u", "b2", "A2",
];
/// Order ids and customers are drawn from these ranges, so repeats,
/// conflicts and orders of no barcode (or barcodes of no order) are common.
const ORDER_IDS: std::ops::RangeInclusive<i64> = 1..=6;
const CUSTOMERS: std::ops::RangeInclusive<i64> = 1..=4;

/// Values no order id may hold: text, zero, negative, a fraction, too
/// large, of the sales range, a control character (in a barcodes file an
/// empty one means unsold).
const BAD_ORDER_IDS: [&str; 7] = [
    "x1",
    "0",
    "-5",
    "1.5",
    "99999999999999999999",
    "9000000000000000001",
    "1\u{0}",
];
/// Values no customer_id may hold (customers have no sales range).
const BAD_CUSTOMER_IDS: [&str; 7] = ["x1", "0", "-5", "1.5", "99999999999999999999", "", "1\u{0}"];
/// Values no barcode may hold: empty, a space, a bad character, too long,
/// a control character.
const BAD_BARCODES: [&str; 5] = [
    "",
    "A 1",
    "A1!",
    "7777777777777777777777777777777777777777777777777777777777777777X",
    "A\u{1b}1",
];

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![Just(Style::Plain), Just(Style::Quoted), Just(Style::Padded)]
}

fn order_row() -> impl Strategy<Value = Row> {
    prop_oneof![
        8 => (ORDER_IDS, CUSTOMERS, style()).prop_map(|(order_id, customer_id, style)| Row::Order {
            order_id,
            customer_id,
            style
        }),
        1 => prop::sample::select(&BAD_ORDER_IDS[..])
            .prop_map(|v| Row::Hostile(Hostile::BadFirst(v))),
        1 => prop::sample::select(&BAD_CUSTOMER_IDS[..])
            .prop_map(|v| Row::Hostile(Hostile::BadSecond(v))),
        1 => odd_line(),
    ]
}

fn barcode_row() -> impl Strategy<Value = Row> {
    prop_oneof![
        8 => (prop::sample::select(&BARCODES[..]), prop::option::weighted(0.7, ORDER_IDS), style())
            .prop_map(|(barcode, order_id, style)| Row::Barcode { barcode, order_id, style }),
        1 => prop::sample::select(&BAD_BARCODES[..]).prop_map(|v| Row::Hostile(Hostile::BadFirst(v))),
        1 => prop::sample::select(&BAD_ORDER_IDS[..])
            .prop_map(|v| Row::Hostile(Hostile::BadSecond(v))),
        1 => odd_line(),
    ]
}

/// A line of either kind that is not a row of the header's shape.
fn odd_line() -> impl Strategy<Value = Row> {
    prop_oneof![
        Just(Row::Hostile(Hostile::MissingField)),
        Just(Row::Hostile(Hostile::UnterminatedQuote)),
        Just(Row::Blank),
    ]
}

fn header() -> impl Strategy<Value = Header> {
    prop_oneof![
        4 => Just(Header::Plain),
        1 => Just(Header::Swapped),
        1 => Just(Header::Shouting),
        1 => Just(Header::ExtraColumn),
    ]
}

/// A file of either kind; now and then one of a header alone.
pub fn file() -> impl Strategy<Value = File> {
    let rows = |row: BoxedStrategy<Row>| prop::collection::vec(row, 0..=8);
    (
        prop_oneof![Just(Kind::Orders), Just(Kind::Barcodes)],
        header(),
        any::<bool>(),
    )
        .prop_flat_map(move |(kind, header, crlf)| {
            let row = match kind {
                Kind::Orders => order_row().boxed(),
                Kind::Barcodes => barcode_row().boxed(),
            };
            rows(row).prop_map(move |rows| {
                File {
                    kind,
                    header,
                    crlf,
                    rows,
                }
                .without_quotes_after_an_open_one()
            })
        })
}

pub fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..3, file()).prop_map(|(key, file)| Step::Upload { key, file }),
        1 => (0usize..8).prop_map(|upload| Step::Redeliver { upload }),
        2 => (CUSTOMERS, 1usize..=3).prop_map(|(customer_id, tickets)| Step::Sell { customer_id, tickets }),
    ]
}

/// A sequence of steps, as long as a case may take.
pub fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..=10)
}
