//! Reading input CSV files: telling an orders file from a barcodes file by its
//! header, and turning lines into typed rows or precise rejections.
//!
//! Works on any [`std::io::Read`], so a file is streamed, never held whole.

use std::io::Read;

use crate::carried_text::storable;
use crate::csv_records::{CsvLimits, Next, Record, RecordError, RecordReader};
use crate::domain::{Barcode, BarcodeRow, CustomerId, OrderId, OrderRow};

/// Which kind of input a file is, decided by its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Orders,
    Barcodes,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Orders => "orders",
            FileKind::Barcodes => "barcodes",
        }
    }
}

/// Where each required column sits in the file.
#[derive(Debug, Clone, Copy)]
enum Layout {
    Orders { order_id: usize, customer_id: usize },
    Barcodes { barcode: usize, order_id: usize },
}

impl Layout {
    fn kind(self) -> FileKind {
        match self {
            Layout::Orders { .. } => FileKind::Orders,
            Layout::Barcodes { .. } => FileKind::Barcodes,
        }
    }
}

/// A whole file that cannot be read as either kind of input.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(
        "the file is empty; expected a header line `order_id,customer_id` or `barcode,order_id`"
    )]
    Empty,
    #[error(
        "unrecognised header `{found}`; expected `order_id,customer_id` (orders) or `barcode,order_id` (barcodes)"
    )]
    /// `found` is the header as carried text (escaped, bounded).
    UnknownHeader { found: String },
    #[error("the file has a header but no rows; nothing to load")]
    HeaderOnly,
    #[error("line {line}: the file is not UTF-8 text; save it as UTF-8 and upload it again")]
    NotUtf8 { line: u64 },
    #[error("line 1: the header cannot be read: {reason}; is this a CSV file with a header line?")]
    HeaderOverLimit { reason: String },
}

/// Why reading a file stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The content cannot be loaded: the file is rejected.
    #[error(transparent)]
    File(#[from] FileError),
    /// The bytes could not be read (storage or network trouble): worth a
    /// retry, says nothing about the file.
    #[error("reading line {line} failed: {source}")]
    Io {
        line: u64,
        #[source]
        source: std::io::Error,
    },
}

/// One line that was not accepted, with what a user needs to find and fix it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectedRow {
    pub line: u64,
    pub field: String,
    pub value: String,
    pub reason: String,
    /// The whole record as it appeared (re-quoted as CSV).
    pub raw: String,
}

impl RejectedRow {
    /// A rejection, with the input text in it made storable (see
    /// [`storable`]: control characters escaped, length bounded).
    pub fn new(line: u64, field: &str, value: &str, reason: &str, raw: &str) -> Self {
        Self {
            line,
            field: field.to_owned(),
            value: storable(value),
            reason: storable(reason),
            raw: storable(raw),
        }
    }
}

/// A parsed line of either kind of file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    Order(OrderRow),
    Barcode(BarcodeRow),
}

/// Streams typed rows out of a CSV file.
pub struct CsvRows<R: Read> {
    reader: RecordReader<R>,
    layout: Layout,
    /// The header's field names as they are reported (canonical for the
    /// columns used, carried text for the others).
    field_names: Vec<String>,
    extra_columns: Vec<String>,
}

fn normalise_header(name: &str) -> String {
    name.trim_start_matches('\u{feff}')
        .trim()
        .to_ascii_lowercase()
}

impl From<RecordError> for ReadError {
    fn from(error: RecordError) -> Self {
        match error {
            RecordError::Io { line, source } => ReadError::Io { line, source },
            RecordError::NotUtf8 { line } => FileError::NotUtf8 { line }.into(),
        }
    }
}

impl<R: Read> CsvRows<R> {
    /// Reads the header and decides the file kind.
    pub fn open(input: R, limits: CsvLimits) -> Result<Self, ReadError> {
        let mut reader = RecordReader::new(input, limits);
        let headers: Vec<String> = match reader.next_header()? {
            Next::Record { record, .. } => record.iter().map(str::to_owned).collect(),
            Next::Cut(cut) => return Err(FileError::HeaderOverLimit { reason: cut.reason }.into()),
            Next::End => return Err(FileError::Empty.into()),
        };
        if headers.iter().all(|h| h.trim().is_empty()) {
            return Err(FileError::Empty.into());
        }
        let names: Vec<String> = headers.iter().map(|h| normalise_header(h)).collect();
        let find = |wanted: &str| names.iter().position(|n| n == wanted);
        let layout = match (find("order_id"), find("customer_id"), find("barcode")) {
            (Some(order_id), _, Some(barcode)) => Layout::Barcodes { barcode, order_id },
            (Some(order_id), Some(customer_id), None) => Layout::Orders {
                order_id,
                customer_id,
            },
            _ => {
                return Err(FileError::UnknownHeader {
                    found: storable(&headers.join(",")),
                }
                .into())
            }
        };
        let used: &[(usize, &str)] = match layout {
            Layout::Orders {
                order_id,
                customer_id,
            } => &[(order_id, "order_id"), (customer_id, "customer_id")],
            Layout::Barcodes { barcode, order_id } => {
                &[(barcode, "barcode"), (order_id, "order_id")]
            }
        };
        let mut extra_columns = Vec::new();
        let field_names = headers
            .iter()
            .enumerate()
            .map(|(i, header)| match used.iter().find(|(at, _)| *at == i) {
                Some((_, canonical)) => (*canonical).to_owned(),
                None => {
                    let name = storable(header.trim_start_matches('\u{feff}').trim());
                    extra_columns.push(name.clone());
                    name
                }
            })
            .collect();
        Ok(Self {
            reader,
            layout,
            field_names,
            extra_columns,
        })
    }

    pub fn kind(&self) -> FileKind {
        self.layout.kind()
    }

    /// Header columns the pipeline does not use: reported, then ignored.
    pub fn extra_columns(&self) -> &[String] {
        &self.extra_columns
    }

    /// The next line: `Ok(Some(Ok(row)))` for a valid line, `Ok(Some(Err(..)))`
    /// for a rejected one, `Ok(None)` at the end. Blank lines are skipped.
    pub fn next_row(&mut self) -> Result<Option<Result<Row, RejectedRow>>, ReadError> {
        loop {
            let (line, record) = match self.reader.next_record()? {
                Next::Record { line, record } => (line, record),
                Next::Cut(cut) => {
                    let field = cut
                        .field
                        .and_then(|index| self.field_names.get(index))
                        .map_or("(row)", String::as_str);
                    // The raw text of a cut is carried text already.
                    return Ok(Some(Err(RejectedRow {
                        raw: cut.raw,
                        ..RejectedRow::new(cut.line, field, "", &cut.reason, "")
                    })));
                }
                Next::End => return Ok(None),
            };
            if record.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            if record.len() != self.field_names.len() {
                return Ok(Some(Err(RejectedRow::new(
                    line,
                    "(row)",
                    "",
                    &format!(
                        "has {} fields; the header has {}",
                        record.len(),
                        self.field_names.len()
                    ),
                    &raw_record(&record),
                ))));
            }
            return Ok(Some(parse_record(self.layout, &record, line)));
        }
    }
}

fn field<'a>(record: &Record<'a>, index: usize) -> &'a str {
    record.get(index).unwrap_or("")
}

/// Re-serialises a record as one CSV line, for rejects files.
fn raw_record(record: &Record<'_>) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let _ = writer.write_record(record.iter());
    let mut bytes = writer.into_inner().unwrap_or_default();
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    String::from_utf8(bytes).unwrap_or_default()
}

fn parse_record(layout: Layout, record: &Record<'_>, line: u64) -> Result<Row, RejectedRow> {
    let reject = |field_name: &str, value: &str, reason: String| {
        RejectedRow::new(line, field_name, value, &reason, &raw_record(record))
    };
    match layout {
        Layout::Orders {
            order_id,
            customer_id,
        } => {
            let raw_order = field(record, order_id);
            let raw_customer = field(record, customer_id);
            let order_id =
                OrderId::parse(raw_order).map_err(|e| reject("order_id", raw_order, e.reason))?;
            let customer_id = CustomerId::parse(raw_customer)
                .map_err(|e| reject("customer_id", raw_customer, e.reason))?;
            Ok(Row::Order(OrderRow {
                line,
                order_id,
                customer_id,
            }))
        }
        Layout::Barcodes { barcode, order_id } => {
            let raw_barcode = field(record, barcode);
            let raw_order = field(record, order_id);
            let barcode = Barcode::parse(raw_barcode)
                .map_err(|e| reject("barcode", raw_barcode, e.reason))?;
            let order_id = if raw_order.trim().is_empty() {
                None
            } else {
                Some(
                    OrderId::parse(raw_order)
                        .map_err(|e| reject("order_id", raw_order, e.reason))?,
                )
            };
            Ok(Row::Barcode(BarcodeRow {
                line,
                barcode,
                order_id,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(input: &str) -> (FileKind, Vec<Result<Row, RejectedRow>>) {
        let mut reader = CsvRows::open(input.as_bytes(), CsvLimits::default()).unwrap();
        let mut out = Vec::new();
        while let Some(row) = reader.next_row().unwrap() {
            out.push(row);
        }
        (reader.kind(), out)
    }

    #[test]
    fn detects_orders_with_bom_crlf_and_odd_case() {
        let (kind, rows) = rows("\u{feff}Order_ID , Customer_Id\r\n1,10\r\n\r\n2,20\r\n");
        assert_eq!(kind, FileKind::Orders);
        assert_eq!(rows.len(), 2);
        match &rows[1] {
            Ok(Row::Order(o)) => {
                assert_eq!((o.line, o.order_id.get(), o.customer_id.get()), (4, 2, 20))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn line_numbers_count_blank_lines_crlf_and_quoted_newlines() {
        let lines = |input: &str| -> Vec<u64> {
            rows(input)
                .1
                .iter()
                .map(|r| match r {
                    Ok(Row::Order(o)) => o.line,
                    Ok(Row::Barcode(b)) => b.line,
                    Err(rejected) => rejected.line,
                })
                .collect()
        };
        assert_eq!(lines("order_id,customer_id\n1,1\n\n2,2\n"), [2, 4]);
        assert_eq!(
            lines("order_id,customer_id\r\n1,1\r\n\r\n2,2\r\n3,3"),
            [2, 4, 5]
        );
        assert_eq!(
            lines("barcode,order_id\n\"a\nb\",1\n0002,1\n\n\n0003,"),
            [2, 4, 7]
        );
        // Lines are counted by `\n`, as `grep -n` and editors do.
        assert_eq!(lines("order_id,customer_id\n\n\n1,2\r\r\n3,4"), [4, 5]);
    }

    #[test]
    fn barcodes_with_empty_order_are_unsold() {
        let (kind, rows) = rows("barcode,order_id\n0001,\n\"0002\",7\n");
        assert_eq!(kind, FileKind::Barcodes);
        assert_eq!(
            rows,
            vec![
                Ok(Row::Barcode(BarcodeRow {
                    line: 2,
                    barcode: Barcode::parse("0001").unwrap(),
                    order_id: None
                })),
                Ok(Row::Barcode(BarcodeRow {
                    line: 3,
                    barcode: Barcode::parse("0002").unwrap(),
                    order_id: Some(OrderId::parse("7").unwrap())
                })),
            ]
        );
    }

    #[test]
    fn bad_values_are_rejected_with_line_and_field() {
        let (_, rows) = rows("order_id,customer_id\nx,1\n2,-5\n3,3\n");
        let rejected: Vec<_> = rows.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(rejected.len(), 2);
        assert_eq!(
            (rejected[0].line, rejected[0].field.as_str()),
            (2, "order_id")
        );
        assert_eq!(
            (rejected[1].line, rejected[1].field.as_str()),
            (3, "customer_id")
        );
        assert!(matches!(rows[2], Ok(Row::Order(_))));
    }

    #[test]
    fn extra_columns_are_named_and_wrong_field_counts_rejected() {
        let mut reader = CsvRows::open(
            "customer_id,order_id,note\n1,2,x\n3,4\n5,6,y,z\n".as_bytes(),
            CsvLimits::default(),
        )
        .unwrap();
        assert_eq!(reader.extra_columns(), ["note"]);
        let mut got = Vec::new();
        while let Some(row) = reader.next_row().unwrap() {
            got.push(row.map(|_| ()).map_err(|r| (r.line, r.raw)));
        }
        assert_eq!(
            got,
            vec![
                Ok(()),
                Err((3, "3,4".to_owned())),
                Err((4, "5,6,y,z".to_owned()))
            ]
        );
    }

    #[test]
    fn unknown_header_and_empty_file_are_file_errors() {
        assert!(matches!(
            CsvRows::open("a,b\n1,2\n".as_bytes(), CsvLimits::default()),
            Err(ReadError::File(FileError::UnknownHeader { .. }))
        ));
        assert!(matches!(
            CsvRows::open("".as_bytes(), CsvLimits::default()),
            Err(ReadError::File(FileError::Empty))
        ));
    }
}
