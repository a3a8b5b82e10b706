//! Records, cuts and line numbers from hostile and ordinary CSV bytes.

use super::*;

const SMALL: CsvLimits = CsvLimits {
    max_record_bytes: 64,
    max_field_bytes: 16,
    max_header_bytes: 32,
    max_columns: 4,
};

#[derive(Debug, PartialEq)]
enum Got {
    Record(u64, Vec<String>),
    Cut(u64, Option<usize>, String),
}

fn read_all(input: impl Read, limits: CsvLimits) -> Vec<Got> {
    let mut reader = RecordReader::new(input, limits);
    let mut out = Vec::new();
    loop {
        match reader.next_record().unwrap() {
            Next::Record { line, record } => out.push(Got::Record(
                line,
                record.iter().map(str::to_owned).collect(),
            )),
            Next::Cut(cut) => out.push(Got::Cut(cut.line, cut.field, cut.reason)),
            Next::End => return out,
        }
    }
}

fn record(line: u64, fields: &[&str]) -> Got {
    Got::Record(line, fields.iter().map(|f| f.to_string()).collect())
}

fn cut_lines_and_reasons(got: &[Got]) -> Vec<(u64, &str)> {
    got.iter()
        .filter_map(|g| match g {
            Got::Cut(line, _, reason) => Some((*line, reason.as_str())),
            Got::Record(..) => None,
        })
        .collect()
}

#[test]
fn an_unterminated_quote_at_the_end_is_cut_and_the_next_line_read_again() {
    let got = read_all(&b"1,1\n2,\"oops\n3,3\n4,4\n"[..], SMALL);
    assert_eq!(
        got,
        [
            record(1, &["1", "1"]),
            Got::Cut(
                2,
                None,
                "unterminated quote opened at line 2 (no closing quote before the end of the file); reading resumed at line 3".into()
            ),
            record(3, &["3", "3"]),
            record(4, &["4", "4"]),
        ]
    );
}

#[test]
fn an_unterminated_quote_past_the_limit_is_cut_at_the_limit() {
    let mut input = b"1,1\n\"a\"\"b,\n".to_vec();
    for i in 0..100 {
        input.extend_from_slice(format!("{i},{i}\n").as_bytes());
    }
    let got = read_all(&input[..], SMALL);
    assert_eq!(
        cut_lines_and_reasons(&got),
        [(2, "unterminated quote opened at line 2 (the record is longer than the limit of 64 bytes (CSV_MAX_RECORD_BYTES)); reading resumed at line 3")]
    );
    assert_eq!(got.len(), 102, "every line after the quote is read");
    assert_eq!(got[101], record(102, &["99", "99"]));
}

#[test]
fn a_quote_opened_on_a_later_line_of_a_record_resumes_after_that_line() {
    let got = read_all(&b"\"a\nb\",\"c\nd\n5,5\n"[..], SMALL);
    assert_eq!(
        got[0],
        Got::Cut(
            1,
            None,
            "unterminated quote opened at line 2 (no closing quote before the end of the file); reading resumed at line 3".into()
        )
    );
    assert_eq!(got[1..], [record(3, &["d"]), record(4, &["5", "5"])]);
}

#[test]
fn a_long_line_is_cut_alone_and_names_its_field() {
    let long = "9".repeat(1000);
    let input = format!("1,1\n2,{long}\n\n3,3\n4,{}\n5,5", "x".repeat(17));
    let got = read_all(input.as_bytes(), SMALL);
    let field_limit =
        "the field is longer than the limit of 16 bytes (CSV_MAX_FIELD_BYTES)".to_owned();
    assert_eq!(
        got,
        [
            record(1, &["1", "1"]),
            Got::Cut(2, Some(1), field_limit.clone()),
            record(4, &["3", "3"]),
            Got::Cut(5, Some(1), field_limit),
            record(6, &["5", "5"]),
        ]
    );
    let wide = format!("{0},{0},{0},{0}\n1,1\n", "x".repeat(16));
    assert_eq!(
        read_all(wide.as_bytes(), SMALL)[0],
        Got::Cut(
            1,
            None,
            "the record is longer than the limit of 64 bytes (CSV_MAX_RECORD_BYTES)".into()
        )
    );
}

#[test]
fn too_many_columns_cut_the_record_and_the_next_line_reads() {
    let got = read_all(&b"a,b,c,d,e,f\n1,2\na,b,c,d\n"[..], SMALL);
    assert_eq!(
        got,
        [
            Got::Cut(
                1,
                None,
                "more than 4 fields (CSV_MAX_COLUMNS); the rest of line 1 was skipped".into()
            ),
            record(2, &["1", "2"]),
            record(3, &["a", "b", "c", "d"]),
        ]
    );
    // At the very end of the input too.
    let got = read_all(&b"1,2\na,b,c,d,e"[..], SMALL);
    assert_eq!(got.len(), 2);
}

#[test]
fn the_header_has_its_own_limit() {
    // A name longer than a field may be, within the header's limit.
    let header = format!("{},b\n1,2\n", "h".repeat(20));
    let mut reader = RecordReader::new(header.as_bytes(), SMALL);
    assert!(matches!(
        reader.next_header().unwrap(),
        Next::Record { line: 1, .. }
    ));
    let header = format!("{},b\n1,2\n", "h".repeat(31));
    let mut reader = RecordReader::new(header.as_bytes(), SMALL);
    let Next::Cut(cut) = reader.next_header().unwrap() else {
        panic!("the header is over its limit")
    };
    assert_eq!(
        cut.reason,
        "the header is longer than the limit of 32 bytes (CSV_MAX_HEADER_BYTES)"
    );
    assert!(matches!(
        reader.next_record().unwrap(),
        Next::Record { line: 2, .. }
    ));
}

#[test]
fn cut_raw_text_is_bounded() {
    let limits = CsvLimits {
        max_record_bytes: 10 * MAX_CARRIED,
        max_field_bytes: 10 * MAX_CARRIED,
        ..SMALL
    };
    let input = format!("\"{}\n1,1\n", "x".repeat(20 * MAX_CARRIED));
    let mut reader = RecordReader::new(input.as_bytes(), limits);
    let Next::Cut(cut) = reader.next_record().unwrap() else {
        panic!("cut expected")
    };
    assert!(cut.raw.len() < MAX_CARRIED + 64, "{}", cut.raw.len());
    assert!(cut.raw.contains("(truncated, "), "{}", cut.raw);
}

const MAX_CARRIED: usize = crate::carried_text::MAX_CARRIED_BYTES;

/// `len` bytes of `x` after a line opening a quote, then two good lines,
/// made up on the fly so that the test itself holds none of it.
struct Flood {
    head: &'static [u8],
    remaining: usize,
    tail: &'static [u8],
}

impl Read for Flood {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.head.is_empty() {
            let n = self.head.len().min(buf.len());
            buf[..n].copy_from_slice(&self.head[..n]);
            self.head = &self.head[n..];
            return Ok(n);
        }
        if self.remaining > 0 {
            let n = self.remaining.min(buf.len());
            buf[..n].fill(b'x');
            self.remaining -= n;
            return Ok(n);
        }
        let n = self.tail.len().min(buf.len());
        buf[..n].copy_from_slice(&self.tail[..n]);
        self.tail = &self.tail[n..];
        Ok(n)
    }
}

#[test]
fn buffers_stay_within_the_record_limit_whatever_the_input() {
    let limits = CsvLimits::default();
    let flood = Flood {
        head: b"order_id,customer_id\n1,1\n2,\"",
        remaining: 64 * 1024 * 1024,
        tail: b"\n3,3\n4,4\n",
    };
    let mut reader = RecordReader::new(flood, limits);
    let mut lines = Vec::new();
    let mut peak = 0;
    loop {
        let next = reader.next_record().unwrap();
        let line = match next {
            Next::Record { line, .. } => line,
            Next::Cut(cut) => cut.line,
            Next::End => break,
        };
        lines.push(line);
        peak = peak.max(reader.buffer.capacity() + reader.fields.capacity());
    }
    assert_eq!(lines, [1, 2, 3, 4, 5]);
    let bound = 2 * (limits.max_record_bytes + 2 * READ_CHUNK);
    assert!(
        peak <= bound,
        "buffers reached {peak} bytes (bound {bound})"
    );
}

/// Hands its input over `chunk` bytes per read, so that a record meets
/// the end of the buffer (and its limit) before its own end.
struct Chunks<'a> {
    input: &'a [u8],
    chunk: usize,
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

#[test]
fn a_record_cut_at_its_limit_names_a_field_only_when_the_field_is_at_fault() {
    let record_limit =
        "the record is longer than the limit of 64 bytes (CSV_MAX_RECORD_BYTES)".to_owned();
    // Four fields within the field limit, together over the record limit.
    let wide = format!("{0},{0},{0},{0}\n1,1\n", "x".repeat(16));
    let got = read_all(
        Chunks {
            input: wide.as_bytes(),
            chunk: 1,
        },
        SMALL,
    );
    assert_eq!(
        got,
        [
            Got::Cut(1, None, record_limit.clone()),
            record(2, &["1", "1"])
        ]
    );
    // The input fuzz/regressions/csv_rows/record-cut-names-a-field, read as
    // the csv_rows fuzz target read it when it found this.
    let found = include_bytes!("../../../../fuzz/regressions/csv_rows/record-cut-names-a-field");
    let got = read_all(
        Chunks {
            input: found,
            chunk: 13,
        },
        SMALL,
    );
    for cut in got.iter().filter_map(|g| match g {
        Got::Cut(_, field, reason) => Some((field, reason)),
        Got::Record(..) => None,
    }) {
        assert!(cut.0.is_none() || cut.1.contains("field"), "{cut:?}");
    }
}

#[test]
fn open_quotes_follow_csv_rules() {
    assert_eq!(open_quote(b"a,\"b"), Some(2));
    assert_eq!(open_quote(b"\"a\"\"b"), Some(0));
    assert_eq!(open_quote(b"\"a\"\"b\""), None);
    assert_eq!(open_quote(b"a\"b,c"), None);
    assert_eq!(open_quote(b"\"a\"x,\"y"), Some(5));
}

#[test]
fn read_errors_are_not_content_errors() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::ConnectionReset.into())
        }
    }
    let mut reader = RecordReader::new(Broken, SMALL);
    assert!(matches!(
        reader.next_record(),
        Err(RecordError::Io { line: 1, .. })
    ));
}

#[test]
fn limits_come_from_the_environment() {
    assert_eq!(limit_from_env("CSV_TEST_UNSET_LIMIT", 7).unwrap(), 7);
    std::env::set_var("CSV_TEST_ZERO_LIMIT", "0");
    assert!(limit_from_env("CSV_TEST_ZERO_LIMIT", 7).is_err());
    std::env::set_var("CSV_TEST_SET_LIMIT", "4096");
    assert_eq!(limit_from_env("CSV_TEST_SET_LIMIT", 7).unwrap(), 4096);
}
