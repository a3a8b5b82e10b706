//! Splitting a CSV byte stream into records, within limits: memory stays
//! bounded whatever the input, and a record over a limit is cut out alone,
//! with where it started and why, so that the rest of the file still reads.
//!
//! `csv-core` (the `csv` crate's own state machine) does the parsing; this
//! module owns the buffers, so that no record can grow them past
//! [`CsvLimits`], and counts lines (by `\n`, as `grep -n` and editors do).

use std::io::Read;

use crate::carried_text::storable_bytes;
use crate::config::ConfigError;

/// What one file may cost. A record, field or header over its limit is
/// rejected (a header: the whole file); memory stays within a few times
/// `max_record_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvLimits {
    /// Bytes of one record as it appears in the file (`CSV_MAX_RECORD_BYTES`).
    pub max_record_bytes: usize,
    /// Bytes of one field's value (`CSV_MAX_FIELD_BYTES`).
    pub max_field_bytes: usize,
    /// Bytes of the header line (`CSV_MAX_HEADER_BYTES`).
    pub max_header_bytes: usize,
    /// Fields in one record, header included (`CSV_MAX_COLUMNS`).
    pub max_columns: usize,
}

impl Default for CsvLimits {
    /// 1 MiB records and 64 KiB fields and headers, 256 columns: thousands of
    /// times what an orders or barcodes line needs (a barcode is at most 64
    /// characters), and small next to a Lambda's memory.
    fn default() -> Self {
        Self {
            max_record_bytes: 1024 * 1024,
            max_field_bytes: 64 * 1024,
            max_header_bytes: 64 * 1024,
            max_columns: 256,
        }
    }
}

impl CsvLimits {
    /// The defaults, each overridden by its variable when set.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            max_record_bytes: limit_from_env("CSV_MAX_RECORD_BYTES", defaults.max_record_bytes)?,
            max_field_bytes: limit_from_env("CSV_MAX_FIELD_BYTES", defaults.max_field_bytes)?,
            max_header_bytes: limit_from_env("CSV_MAX_HEADER_BYTES", defaults.max_header_bytes)?,
            max_columns: limit_from_env("CSV_MAX_COLUMNS", defaults.max_columns)?,
        })
    }
}

fn limit_from_env(name: &'static str, default: usize) -> Result<usize, ConfigError> {
    let limit = crate::config::positive_from_env(name, "bytes or columns", default as u64)?;
    usize::try_from(limit).map_err(|e| ConfigError::Invalid {
        name,
        value: limit.to_string(),
        reason: e.to_string(),
    })
}

/// Bytes read from the input at once.
const READ_CHUNK: usize = 64 * 1024;

/// One record's fields, borrowed from the reader until the next read.
pub struct Record<'a> {
    text: &'a str,
    ends: &'a [usize],
}

impl<'a> Record<'a> {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&'a str> {
        let end = *self.ends.get(index)?;
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        Some(&self.text[start..end])
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        (0..self.len()).filter_map(|index| self.get(index))
    }
}

/// A record cut out because it broke a limit or never ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The line the record started on.
    pub line: u64,
    /// The field being read when the record was cut (0-based), if it was
    /// one field's fault.
    pub field: Option<usize>,
    pub reason: String,
    /// The start of the record as it appeared (escaped, bounded).
    pub raw: String,
}

/// What [`RecordReader::next_record`] found.
pub enum Next<'a> {
    Record { line: u64, record: Record<'a> },
    Cut(Cut),
    End,
}

/// Why reading stopped: the bytes could not be read, or are not UTF-8.
#[derive(Debug)]
pub enum RecordError {
    Io { line: u64, source: std::io::Error },
    NotUtf8 { line: u64 },
}

/// A limit on bytes, and the variable that sets it.
#[derive(Clone, Copy)]
struct Limit {
    what: &'static str,
    bytes: usize,
    name: &'static str,
}

/// The limits one read applies: a header's differ from a row's.
#[derive(Clone, Copy)]
struct RecordLimits {
    record: Limit,
    field: Limit,
}

impl Limit {
    fn exceeded(self) -> String {
        format!(
            "the {} is longer than the limit of {} bytes ({})",
            self.what, self.bytes, self.name
        )
    }
}

/// Reads records from a byte stream within [`CsvLimits`].
pub struct RecordReader<R> {
    input: R,
    core: csv_core::Reader,
    limits: CsvLimits,
    /// Holds the current record's bytes from `record_start` (so that a
    /// record cut short can be re-read from the line after its opening
    /// quote), then the bytes read ahead, up to `filled`.
    buffer: Vec<u8>,
    record_start: usize,
    pos: usize,
    filled: usize,
    eof: bool,
    /// The line `pos` is on.
    line: u64,
    fields: Vec<u8>,
    ends: Vec<usize>,
}

impl<R: Read> RecordReader<R> {
    pub fn new(input: R, limits: CsvLimits) -> Self {
        Self {
            input,
            core: csv_core::Reader::new(),
            limits,
            buffer: vec![0; READ_CHUNK],
            record_start: 0,
            pos: 0,
            filled: 0,
            eof: false,
            line: 1,
            fields: vec![0; 1024],
            ends: vec![0; 16.min(limits.max_columns)],
        }
    }

    /// The header: the first record, within the header's limit (which
    /// bounds its names too).
    pub fn next_header(&mut self) -> Result<Next<'_>, RecordError> {
        let header = Limit {
            what: "header",
            bytes: self.limits.max_header_bytes,
            name: "CSV_MAX_HEADER_BYTES",
        };
        self.read_record(RecordLimits {
            record: header,
            field: header,
        })
    }

    /// The next record (blank lines skipped).
    pub fn next_record(&mut self) -> Result<Next<'_>, RecordError> {
        self.read_record(RecordLimits {
            record: Limit {
                what: "record",
                bytes: self.limits.max_record_bytes,
                name: "CSV_MAX_RECORD_BYTES",
            },
            field: Limit {
                what: "field",
                bytes: self.limits.max_field_bytes,
                name: "CSV_MAX_FIELD_BYTES",
            },
        })
    }

    fn read_record(&mut self, limit: RecordLimits) -> Result<Next<'_>, RecordError> {
        let max_bytes = limit.record.bytes;
        if !self.skip_blank_lines()? {
            return Ok(Next::End);
        }
        self.record_start = self.pos;
        let line = self.line;
        let (mut fields_len, mut ends_len) = (0usize, 0usize);
        loop {
            if self.pos == self.filled {
                if self.pos - self.record_start > max_bytes {
                    let field_len =
                        fields_len - ends_len.checked_sub(1).map_or(0, |i| self.ends[i]);
                    return self.cut_oversized(line, ends_len, field_len, limit);
                }
                self.fill()?;
            }
            let input = &self.buffer[self.pos..self.filled];
            let (result, read, written, ended) = self.core.read_record(
                input,
                &mut self.fields[fields_len..],
                &mut self.ends[ends_len..],
            );
            self.line += count_newlines(&input[..read]);
            self.pos += read;
            fields_len += written;
            ends_len += ended;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => {
                    // Input and fields grow together; the input check above
                    // bounds both.
                    let len = self.fields.len();
                    grow_exactly(
                        &mut self.fields,
                        (len * 2).min(max_bytes + READ_CHUNK).max(len + 1),
                    );
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() >= self.limits.max_columns {
                        return self.cut_too_many_columns(line);
                    }
                    let grown = (self.ends.len() * 2).min(self.limits.max_columns);
                    grow_exactly(&mut self.ends, grown);
                }
                csv_core::ReadRecordResult::Record => {
                    return self.finish_record(line, fields_len, ends_len, limit);
                }
                csv_core::ReadRecordResult::End => return Ok(Next::End),
            }
        }
    }

    /// Checks a complete record against the limits and the encoding.
    fn finish_record(
        &mut self,
        line: u64,
        fields_len: usize,
        ends_len: usize,
        limit: RecordLimits,
    ) -> Result<Next<'_>, RecordError> {
        let at_end = self.eof && self.pos == self.filled;
        if at_end {
            // Only the last record can have run into the end of the file
            // inside a quote: the file's rest was swallowed by it.
            if let Some(quote) = open_quote(&self.buffer[self.record_start..self.pos]) {
                return self.cut_at_open_quote(
                    line,
                    quote,
                    "no closing quote before the end of the file",
                );
            }
        }
        let ends = &self.ends[..ends_len];
        let mut start = 0;
        for (index, &end) in ends.iter().enumerate() {
            if end - start > limit.field.bytes {
                return Ok(Next::Cut(self.cut(
                    line,
                    Some(index),
                    limit.field.exceeded(),
                )));
            }
            start = end;
        }
        if self.pos - self.record_start > limit.record.bytes {
            return Ok(Next::Cut(self.cut(line, None, limit.record.exceeded())));
        }
        let bytes = &self.fields[..fields_len];
        let text = match std::str::from_utf8(bytes) {
            Ok(text) if ends.iter().all(|&end| text.is_char_boundary(end)) => text,
            Ok(_) => return Err(RecordError::NotUtf8 { line }),
            Err(e) => {
                let line = line + count_newlines(&bytes[..e.valid_up_to()]);
                return Err(RecordError::NotUtf8 { line });
            }
        };
        Ok(Next::Record {
            line,
            record: Record { text, ends },
        })
    }

    /// A record over its limit, cut mid-way: inside a quote that never closed,
    /// reading resumes on the line after the quote; otherwise after the end
    /// of the line the record was cut on.
    fn cut_oversized(
        &mut self,
        line: u64,
        field: usize,
        field_len: usize,
        limit: RecordLimits,
    ) -> Result<Next<'_>, RecordError> {
        if let Some(quote) = open_quote(&self.buffer[self.record_start..self.pos]) {
            return self.cut_at_open_quote(line, quote, &limit.record.exceeded());
        }
        // Said the same way whether the field ended inside the buffer or not;
        // the field being read is named only when it is the one too long.
        let cut = if field_len > limit.field.bytes {
            self.cut(line, Some(field), limit.field.exceeded())
        } else {
            self.cut(line, None, limit.record.exceeded())
        };
        self.resume_after_line(self.pos)?;
        Ok(Next::Cut(cut))
    }

    fn cut_too_many_columns(&mut self, line: u64) -> Result<Next<'_>, RecordError> {
        let cut = self.cut(
            line,
            None,
            format!(
                "more than {} fields (CSV_MAX_COLUMNS); the rest of line {} was skipped",
                self.limits.max_columns, self.line
            ),
        );
        self.resume_after_line(self.pos)?;
        Ok(Next::Cut(cut))
    }

    /// A quote opened at `quote` (an offset in the record) never closed:
    /// the record is cut there and reading resumes on the next line.
    fn cut_at_open_quote(
        &mut self,
        line: u64,
        quote: usize,
        why: &str,
    ) -> Result<Next<'_>, RecordError> {
        let record = &self.buffer[self.record_start..self.pos];
        let quote_line = line + count_newlines(&record[..quote]);
        let cut = self.cut(
            line,
            None,
            format!(
                "unterminated quote opened at line {quote_line} ({why}); reading resumed at line {}",
                quote_line + 1
            ),
        );
        self.line = quote_line;
        self.resume_after_line(self.record_start + quote)?;
        Ok(Next::Cut(cut))
    }

    fn cut(&self, line: u64, field: Option<usize>, reason: String) -> Cut {
        Cut {
            line,
            field,
            reason,
            raw: storable_bytes(&self.buffer[self.record_start..self.pos]),
        }
    }

    /// Moves to the start of the line after the one holding `from` (a
    /// buffer offset on line `self.line`), discarding input without
    /// keeping it.
    fn resume_after_line(&mut self, from: usize) -> Result<(), RecordError> {
        self.core.reset();
        let mut from = from;
        loop {
            if let Some(newline) = self.buffer[from..self.filled]
                .iter()
                .position(|&b| b == b'\n')
            {
                self.pos = from + newline + 1;
                self.line += 1;
                self.record_start = self.pos;
                return Ok(());
            }
            // Nothing of this line is needed any more.
            self.record_start = self.filled;
            self.pos = self.filled;
            self.fill()?;
            if self.pos == self.filled {
                return Ok(());
            }
            from = self.pos;
        }
    }

    /// Skips line ends before a record; false at the end of the input.
    fn skip_blank_lines(&mut self) -> Result<bool, RecordError> {
        loop {
            if self.pos == self.filled {
                self.record_start = self.pos;
                self.fill()?;
                if self.pos == self.filled {
                    return Ok(false);
                }
            }
            match self.buffer[self.pos] {
                b'\n' => self.line += 1,
                b'\r' => {}
                _ => return Ok(true),
            }
            self.pos += 1;
        }
    }

    /// Reads more input after `filled`, keeping the current record. Leaves
    /// `pos == filled` only at the end of the input.
    fn fill(&mut self) -> Result<(), RecordError> {
        if self.eof {
            return Ok(());
        }
        if self.record_start > 0 {
            self.buffer.copy_within(self.record_start..self.filled, 0);
            self.pos -= self.record_start;
            self.filled -= self.record_start;
            self.record_start = 0;
        }
        if self.buffer.len() - self.filled < READ_CHUNK / 2 {
            grow_exactly(&mut self.buffer, self.filled + READ_CHUNK);
        }
        loop {
            match self.input.read(&mut self.buffer[self.filled..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(read) => {
                    self.filled += read;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(RecordError::Io {
                        line: self.line,
                        source,
                    })
                }
            }
        }
    }
}

/// Grows `buffer` to `len` without the doubling `resize` may do, so the
/// limits bound the memory actually held.
fn grow_exactly<T: Copy + Default>(buffer: &mut Vec<T>, len: usize) {
    buffer.reserve_exact(len.saturating_sub(buffer.len()));
    buffer.resize(len, T::default());
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Where, in `record` (a record's bytes as they appear), a quote opens that
/// is still open at its end; follows `csv-core`'s rules (a quote only opens
/// at the start of a field, `""` inside quotes is a literal quote).
fn open_quote(record: &[u8]) -> Option<usize> {
    enum State {
        FieldStart,
        Unquoted,
        Quoted(usize),
        QuoteInQuoted(usize),
    }
    let mut state = State::FieldStart;
    for (offset, &byte) in record.iter().enumerate() {
        state = match (state, byte) {
            (State::FieldStart, b'"') => State::Quoted(offset),
            (State::Quoted(at), b'"') => State::QuoteInQuoted(at),
            (State::QuoteInQuoted(at), b'"') => State::Quoted(at),
            (State::Quoted(at), _) => State::Quoted(at),
            (_, b',' | b'\n' | b'\r') => State::FieldStart,
            (_, _) => State::Unquoted,
        };
    }
    match state {
        State::Quoted(at) => Some(at),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
