//! Reading input CSV files: telling an orders file from a barcodes file by its
//! header, and turning lines into typed rows or precise rejections.
//!
//! Works on any [`std::io::Read`], so a file is streamed, never held whole.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Read;
use std::rc::Rc;

use crate::carried_text::storable;
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
    #[error("line {line}: not valid CSV ({source}); fix the file and upload it again")]
    Csv {
        line: u64,
        #[source]
        source: csv::Error,
    },
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
    reader: csv::Reader<NewlineTracking<R>>,
    newlines: Rc<RefCell<NewlineIndex>>,
    layout: Layout,
    record: csv::StringRecord,
    columns: usize,
    extra_columns: Vec<String>,
}

/// Where the newlines of the input are, so that a record's line number can be
/// computed from its end offset. (`csv`'s own record positions miscount
/// after blank lines and with CRLF line ends.) Only offsets not yet passed are
/// kept, so memory stays bounded by the reader's buffer.
#[derive(Default)]
struct NewlineIndex {
    pending: VecDeque<u64>,
    counted: u64,
    last_counted: Option<u64>,
    read: u64,
}

impl NewlineIndex {
    /// Newlines at offsets below `end`, and whether `end - 1` is one.
    fn newlines_before(&mut self, end: u64) -> (u64, bool) {
        while self.pending.front().is_some_and(|&offset| offset < end) {
            self.last_counted = self.pending.pop_front();
            self.counted += 1;
        }
        (self.counted, end > 0 && self.last_counted == Some(end - 1))
    }
}

struct NewlineTracking<R> {
    inner: R,
    index: Rc<RefCell<NewlineIndex>>,
}

impl<R: Read> Read for NewlineTracking<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut index = self.index.borrow_mut();
        let base = index.read;
        for (i, _) in buf[..n].iter().enumerate().filter(|(_, &b)| b == b'\n') {
            index.pending.push_back(base + i as u64);
        }
        index.read += n as u64;
        Ok(n)
    }
}

fn normalise_header(name: &str) -> String {
    name.trim_start_matches('\u{feff}')
        .trim()
        .to_ascii_lowercase()
}

impl<R: Read> CsvRows<R> {
    /// Reads the header and decides the file kind.
    pub fn open(input: R) -> Result<Self, ReadError> {
        let newlines = Rc::new(RefCell::new(NewlineIndex::default()));
        let input = NewlineTracking {
            inner: input,
            index: newlines.clone(),
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::None)
            .from_reader(input);
        let headers = reader.headers().map_err(|e| csv_error(e, 1))?.clone();
        if headers.is_empty() || headers.iter().all(|h| h.trim().is_empty()) {
            return Err(FileError::Empty.into());
        }
        let names: Vec<String> = headers.iter().map(normalise_header).collect();
        let find = |wanted: &str| names.iter().position(|n| n == wanted);
        let layout = match (find("order_id"), find("customer_id"), find("barcode")) {
            (Some(order_id), _, Some(barcode)) => Layout::Barcodes { barcode, order_id },
            (Some(order_id), Some(customer_id), None) => Layout::Orders {
                order_id,
                customer_id,
            },
            _ => {
                return Err(FileError::UnknownHeader {
                    found: storable(&headers.iter().collect::<Vec<_>>().join(",")),
                }
                .into())
            }
        };
        let used: &[usize] = match layout {
            Layout::Orders {
                order_id,
                customer_id,
            } => &[order_id, customer_id],
            Layout::Barcodes { barcode, order_id } => &[barcode, order_id],
        };
        let extra_columns = headers
            .iter()
            .enumerate()
            .filter(|(i, _)| !used.contains(i))
            .map(|(_, name)| storable(name.trim_start_matches('\u{feff}').trim()))
            .collect();
        Ok(Self {
            reader,
            newlines,
            layout,
            record: csv::StringRecord::new(),
            columns: headers.len(),
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
            let more = match self.reader.read_record(&mut self.record) {
                Ok(more) => more,
                Err(source) => {
                    let line = self.line_at(source.position().map_or(0, |p| p.byte()));
                    return Err(csv_error(source, line));
                }
            };
            if !more {
                return Ok(None);
            }
            let line = self.current_line();
            if self.record.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            if self.record.len() != self.columns {
                return Ok(Some(Err(RejectedRow::new(
                    line,
                    "(row)",
                    "",
                    &format!(
                        "has {} fields; the header has {}",
                        self.record.len(),
                        self.columns
                    ),
                    &raw_record(&self.record),
                ))));
            }
            return Ok(Some(parse_record(self.layout, &self.record, line)));
        }
    }
}

fn csv_error(source: csv::Error, line: u64) -> ReadError {
    match source.kind() {
        csv::ErrorKind::Utf8 { .. } => FileError::NotUtf8 { line }.into(),
        csv::ErrorKind::Io(_) => match source.into_kind() {
            csv::ErrorKind::Io(source) => ReadError::Io { line, source },
            _ => unreachable!("the kind was just matched"),
        },
        _ => FileError::Csv { line, source }.into(),
    }
}

impl<R: Read> CsvRows<R> {
    /// The line holding byte `offset` (where a broken record starts).
    fn line_at(&self, offset: u64) -> u64 {
        let (before, _) = self.newlines.borrow_mut().newlines_before(offset);
        before + 1
    }

    /// The 1-based line on which the record just read starts.
    fn current_line(&self) -> u64 {
        let end = self.reader.position().byte();
        let (before, ends_with_newline) = self.newlines.borrow_mut().newlines_before(end);
        // The record's own terminator may or may not have been consumed yet.
        let end_line = before + 1 - u64::from(ends_with_newline);
        let embedded: u64 = self
            .record
            .iter()
            .map(|field| field.bytes().filter(|&b| b == b'\n').count() as u64)
            .sum();
        end_line.saturating_sub(embedded)
    }
}

fn field(record: &csv::StringRecord, index: usize) -> &str {
    record.get(index).unwrap_or("")
}

/// Re-serialises a record as one CSV line, for rejects files.
pub fn raw_record(record: &csv::StringRecord) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let _ = writer.write_record(record);
    let mut bytes = writer.into_inner().unwrap_or_default();
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    String::from_utf8(bytes).unwrap_or_default()
}

fn parse_record(layout: Layout, record: &csv::StringRecord, line: u64) -> Result<Row, RejectedRow> {
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
        let mut reader = CsvRows::open(input.as_bytes()).unwrap();
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
        let mut reader =
            CsvRows::open("customer_id,order_id,note\n1,2,x\n3,4\n5,6,y,z\n".as_bytes()).unwrap();
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
            CsvRows::open("a,b\n1,2\n".as_bytes()),
            Err(ReadError::File(FileError::UnknownHeader { .. }))
        ));
        assert!(matches!(
            CsvRows::open("".as_bytes()),
            Err(ReadError::File(FileError::Empty))
        ));
    }
}
