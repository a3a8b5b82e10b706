//! Bytes in → records, rows and rejections out (csv_records, csv_input,
//! domain), under the default limits with the input in one read, and under
//! tiny limits with short, interrupted reads. Asserted whatever the bytes:
//! no panic; nothing over a limit comes out; every text carried out of the
//! input is bounded; lines never go backwards; the memory held stays within
//! a few times the record limit (counted, not guessed).
#![no_main]

use libfuzzer_sys::fuzz_target;
use order_pipeline::csv_input::{CsvRows, ReadError, Row};
use order_pipeline::csv_records::{CsvLimits, Next, RecordReader};
use order_pipeline::domain::{Barcode, FIRST_SALE_ORDER_ID};
use order_pipeline_fuzz::{peak_bytes_during, CountingAllocator, ShortReads, MAX_CARRIED_TEXT};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The unit tests' tiny limits: fuzz inputs of a few KiB break all of them.
const TINY: CsvLimits = CsvLimits {
    max_record_bytes: 64,
    max_field_bytes: 16,
    max_header_bytes: 32,
    max_columns: 4,
};

/// Bytes read from the input at once (`csv_records::READ_CHUNK`).
const READ_CHUNK: usize = 64 * 1024;

/// What one file may hold in memory at once, from what the reader keeps
/// (the buffer, the fields, the field ends: each at most a record and a read
/// chunk) and what a row makes (a rejection re-quotes its record): "a few
/// times the record limit", in numbers.
fn memory_bound(limits: CsvLimits) -> usize {
    let record = limits.max_record_bytes.max(limits.max_header_bytes);
    6 * record + 4 * READ_CHUNK + limits.max_columns * 4 * 1024 + 64 * 1024
}

fuzz_target!(|data: &[u8]| {
    // Building a reader (csv-core's state machine) dominates a run, so the
    // default limits, which few inputs this short can break, read only a
    // quarter of them.
    if data.len() % 4 == 0 {
        within_memory_bound(CsvLimits::default(), || {
            records_within_limits(data, data, CsvLimits::default());
            rows_are_valid_or_rejected(data, data, CsvLimits::default());
        });
    }
    let chunk = 1 + data.len() % 13;
    within_memory_bound(TINY, || {
        records_within_limits(data, ShortReads::new(data, chunk), TINY);
        rows_are_valid_or_rejected(data, ShortReads::new(data, chunk), TINY);
    });
});

fn within_memory_bound(limits: CsvLimits, read: impl FnOnce()) {
    let ((), peak) = peak_bytes_during(read);
    let bound = memory_bound(limits);
    assert!(
        peak <= bound,
        "reading held {peak} bytes; the bound for {limits:?} is {bound}"
    );
}

fn newlines(data: &[u8]) -> u64 {
    data.iter().filter(|&&b| b == b'\n').count() as u64
}

/// The record layer: the header within the header limit, every record
/// within the record, field and column limits, lines in order, and an end.
fn records_within_limits(data: &[u8], input: impl std::io::Read, limits: CsvLimits) {
    let last_line = newlines(data) + 1;
    let mut reader = RecordReader::new(input, limits);
    let mut previous_line = 0;
    let mut check_line = |line: u64| {
        assert!(
            line >= previous_line,
            "line {line} after line {previous_line}"
        );
        assert!(line <= last_line, "line {line} of a {last_line}-line input");
        previous_line = line;
    };
    let Ok(header) = reader.next_header() else {
        return;
    };
    match header {
        Next::Record { line, record } => {
            check_line(line);
            assert!(
                record.len() <= limits.max_columns,
                "header of {} columns",
                record.len()
            );
            let bytes: usize = record.iter().map(str::len).sum();
            assert!(bytes <= limits.max_header_bytes, "header of {bytes} bytes");
        }
        Next::Cut(cut) => {
            check_line(cut.line);
            assert!(
                cut.raw.len() <= MAX_CARRIED_TEXT,
                "cut raw of {} bytes",
                cut.raw.len()
            );
        }
        Next::End => return,
    }
    // Every record or cut consumes at least one byte: more means a loop.
    for _ in 0..=data.len() {
        match reader.next_record() {
            Ok(Next::Record { line, record }) => {
                check_line(line);
                assert!(
                    record.len() <= limits.max_columns,
                    "record of {} columns",
                    record.len()
                );
                let mut bytes = 0;
                for field in record.iter() {
                    assert!(
                        field.len() <= limits.max_field_bytes,
                        "field of {} bytes",
                        field.len()
                    );
                    bytes += field.len();
                }
                assert!(bytes <= limits.max_record_bytes, "record of {bytes} bytes");
            }
            Ok(Next::Cut(cut)) => {
                check_line(cut.line);
                assert!(
                    cut.raw.len() <= MAX_CARRIED_TEXT,
                    "cut raw of {} bytes",
                    cut.raw.len()
                );
                // A cut names a field only when that field broke its limit;
                // it may be the one past the last column allowed.
                if let Some(field) = cut.field {
                    assert!(
                        cut.reason.contains("field is longer"),
                        "field {field} named for: {}",
                        cut.reason
                    );
                    assert!(field <= limits.max_columns, "cut in field {field}");
                }
            }
            Ok(Next::End) => return,
            Err(order_pipeline::csv_records::RecordError::NotUtf8 { line }) => {
                check_line(line);
                return;
            }
            Err(error) => panic!("an in-memory read failed: {error:?}"),
        }
    }
    panic!("more records than the input has bytes");
}

/// The row layer: a valid row holds only valid values, a rejection names a
/// line, a field and a reason, and carries bounded text.
fn rows_are_valid_or_rejected(data: &[u8], input: impl std::io::Read, limits: CsvLimits) {
    let last_line = newlines(data) + 1;
    let mut rows = match CsvRows::open(input, limits) {
        Ok(rows) => rows,
        Err(ReadError::File(_)) => return,
        Err(error @ ReadError::Io { .. }) => panic!("an in-memory read failed: {error}"),
    };
    for name in rows.extra_columns() {
        assert!(
            name.len() <= MAX_CARRIED_TEXT,
            "column name of {} bytes",
            name.len()
        );
    }
    let mut previous_line = 1;
    for _ in 0..=data.len() {
        let row = match rows.next_row() {
            Ok(Some(row)) => row,
            Ok(None) | Err(ReadError::File(_)) => return,
            Err(error @ ReadError::Io { .. }) => panic!("an in-memory read failed: {error}"),
        };
        let line = match row {
            Ok(Row::Order(order)) => {
                assert!(order.order_id.get() > 0 && order.order_id.get() < FIRST_SALE_ORDER_ID);
                assert!(order.customer_id.get() > 0);
                order.line
            }
            Ok(Row::Barcode(barcode)) => {
                let text = barcode.barcode.as_str();
                assert_eq!(Barcode::parse(text).as_ref(), Ok(&barcode.barcode));
                assert!(text.len() <= Barcode::MAX_LEN);
                assert!(barcode.order_id.is_none_or(|id| id.get() > 0));
                barcode.line
            }
            Err(rejected) => {
                assert!(!rejected.reason.is_empty(), "a rejection without a reason");
                for (what, text) in [
                    ("field", &rejected.field),
                    ("value", &rejected.value),
                    ("reason", &rejected.reason),
                    ("raw", &rejected.raw),
                ] {
                    assert!(
                        text.len() <= MAX_CARRIED_TEXT,
                        "rejected {what} of {} bytes",
                        text.len()
                    );
                    assert!(
                        !text.contains('\0'),
                        "rejected {what} holds a NUL: {text:?}"
                    );
                }
                rejected.line
            }
        };
        assert!(
            line >= previous_line,
            "line {line} after line {previous_line}"
        );
        // A header ended by a lone CR leaves its first row on line 1.
        assert!(
            (1..=last_line).contains(&line),
            "line {line} of a {last_line}-line input"
        );
        previous_line = line;
    }
    panic!("more rows than the input has bytes");
}
