//! PostgreSQL's binary COPY format, encoded into large buffers.
//!
//! tokio-postgres' `BinaryCopyInWriter` is awaited once per row and hands
//! the connection a message every 4 KB: for millions of rows, that is tens
//! of thousands of wake-ups of the connection task on another thread. This
//! encoder writes rows synchronously into one buffer, and the loader sends
//! it when it is large, a few hundred times per million rows.

use bytes::{BufMut, Bytes, BytesMut};

/// Sent to the server once a buffer holds this much.
const SEND_AT: usize = 256 * 1024;

/// The signature, flags and header extension length of the binary format.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Rows in PostgreSQL's binary COPY format, written field by field.
pub(super) struct CopyBuffer {
    buf: BytesMut,
}

impl CopyBuffer {
    /// A buffer that starts with the format's header.
    pub(super) fn new() -> Self {
        let mut buf = BytesMut::with_capacity(SEND_AT + 4096);
        buf.put_slice(HEADER);
        Self { buf }
    }

    /// Starts a row of `fields` fields.
    pub(super) fn row(&mut self, fields: i16) -> &mut Self {
        self.buf.put_i16(fields);
        self
    }

    pub(super) fn int8(&mut self, value: i64) -> &mut Self {
        self.buf.put_i32(8);
        self.buf.put_i64(value);
        self
    }

    pub(super) fn int8_or_null(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(value) => self.int8(value),
            None => {
                self.buf.put_i32(-1);
                self
            }
        }
    }

    /// A text field. The caller's strings are valid UTF-8 and short (the
    /// parser bounds every field), so the length fits.
    pub(super) fn text(&mut self, value: &str) -> &mut Self {
        self.buf.put_i32(value.len() as i32);
        self.buf.put_slice(value.as_bytes());
        self
    }

    /// The encoded rows, when there are enough to be worth a message.
    pub(super) fn take_if_full(&mut self) -> Option<Bytes> {
        (self.buf.len() >= SEND_AT).then(|| {
            let full = self.buf.split().freeze();
            self.buf.reserve(SEND_AT + 4096);
            full
        })
    }

    /// Everything left, with the format's trailer.
    pub(super) fn finish(mut self) -> Bytes {
        self.buf.put_i16(-1);
        self.buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_documented_layout() {
        let mut copy = CopyBuffer::new();
        copy.row(3).text("B1").int8(7).int8_or_null(None);
        let bytes = copy.finish();
        let mut expected = HEADER.to_vec();
        expected.extend(3i16.to_be_bytes());
        expected.extend(2i32.to_be_bytes());
        expected.extend(b"B1");
        expected.extend(8i32.to_be_bytes());
        expected.extend(7i64.to_be_bytes());
        expected.extend((-1i32).to_be_bytes());
        expected.extend((-1i16).to_be_bytes());
        assert_eq!(bytes.as_ref(), expected.as_slice());
        assert_eq!(HEADER.len(), 19);
    }

    #[test]
    fn hands_over_full_buffers_only() {
        let mut copy = CopyBuffer::new();
        assert!(copy.take_if_full().is_none());
        while copy.buf.len() < SEND_AT {
            copy.row(1).text("0123456789");
        }
        let full = copy.take_if_full().expect("full");
        assert!(full.starts_with(HEADER));
        assert!(copy.take_if_full().is_none());
        assert_eq!(copy.finish().as_ref(), (-1i16).to_be_bytes());
    }
}
