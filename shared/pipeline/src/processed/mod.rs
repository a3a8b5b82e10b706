//! The `processed_orders.csv` format: `customer_id,order_id,barcodes`, one
//! line per order that has barcodes, the barcodes as a bracketed list in one
//! field, e.g. `10,1,"[11111111111, 11111111318]"`.

use std::io::Write;

use crate::domain::ProcessedOrder;

pub mod segments;

pub const HEADER: [&str; 3] = ["customer_id", "order_id", "barcodes"];

/// Writes processed orders as CSV; the caller supplies them already ordered
/// (by order_id). Millions of lines: the ids are formatted without
/// allocating. Each line is handed on as it is written, so the writer knows
/// exactly how many bytes it wrote (where a segment of the export ends).
pub struct ProcessedOrdersWriter<W: Write> {
    writer: csv::Writer<Lines<W>>,
    list: String,
    customer_id: itoa::Buffer,
    order_id: itoa::Buffer,
}

impl<W: Write> ProcessedOrdersWriter<W> {
    /// A writer of the whole file: the header first.
    pub fn new(output: W) -> csv::Result<Self> {
        let mut writer = Self::continuing(output);
        writer.writer.write_record(HEADER)?;
        writer.writer.flush()?;
        Ok(writer)
    }

    /// A writer of lines that follow others (a later segment): no header.
    pub fn continuing(output: W) -> Self {
        Self {
            writer: csv::Writer::from_writer(Lines { output, bytes: 0 }),
            list: String::new(),
            customer_id: itoa::Buffer::new(),
            order_id: itoa::Buffer::new(),
        }
    }

    pub fn write(&mut self, order: &ProcessedOrder) -> csv::Result<()> {
        self.list.clear();
        self.list.push('[');
        for (i, barcode) in order.barcodes.iter().enumerate() {
            if i > 0 {
                self.list.push_str(", ");
            }
            self.list.push_str(barcode.as_str());
        }
        self.list.push(']');
        self.writer.write_record([
            self.customer_id.format(order.customer_id.get()),
            self.order_id.format(order.order_id.get()),
            self.list.as_str(),
        ])?;
        // Hands the line on (see `Lines`): a copy, not a system call.
        self.writer.flush()?;
        Ok(())
    }

    /// The bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.writer.get_ref().bytes
    }

    pub fn finish(self) -> std::io::Result<W> {
        let mut lines = self
            .writer
            .into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        lines.output.flush()?;
        Ok(lines.output)
    }
}

/// The CSV writer's output: counts the bytes, and does not pass on the
/// flush that follows each line (the output, buffered, is flushed once at
/// the end).
struct Lines<W> {
    output: W,
    bytes: u64,
}

impl<W: Write> Write for Lines<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.output.write(buf)?;
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// processed_orders.csv being written to a temporary file, so that memory
/// stays flat whatever its size; uploaded from there.
pub struct ExportFile {
    file: tempfile::NamedTempFile,
    writer: ProcessedOrdersWriter<std::io::BufWriter<std::fs::File>>,
    orders: u64,
}

impl ExportFile {
    pub fn new() -> std::io::Result<Self> {
        let file = tempfile::NamedTempFile::new()?;
        let output = std::io::BufWriter::with_capacity(256 * 1024, file.reopen()?);
        let writer = ProcessedOrdersWriter::new(output).map_err(std::io::Error::other)?;
        Ok(Self {
            file,
            writer,
            orders: 0,
        })
    }

    pub fn write(&mut self, order: &ProcessedOrder) -> std::io::Result<()> {
        self.orders += 1;
        self.writer.write(order).map_err(std::io::Error::other)
    }

    /// Flushes the file; returns it with the number of orders written.
    pub fn finish(self) -> std::io::Result<(tempfile::NamedTempFile, u64)> {
        self.writer.finish()?.flush()?;
        Ok((self.file, self.orders))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Barcode, CustomerId, OrderId};

    #[test]
    fn writes_the_documented_format() {
        let mut out = ProcessedOrdersWriter::new(Vec::new()).unwrap();
        out.write(&ProcessedOrder {
            customer_id: CustomerId::parse("10").unwrap(),
            order_id: OrderId::parse("1").unwrap(),
            barcodes: vec![
                Barcode::parse("11111111111").unwrap(),
                Barcode::parse("11111111318").unwrap(),
            ],
        })
        .unwrap();
        out.write(&ProcessedOrder {
            customer_id: CustomerId::parse("11").unwrap(),
            order_id: OrderId::parse("2").unwrap(),
            barcodes: vec![Barcode::parse("0042").unwrap()],
        })
        .unwrap();
        let text = String::from_utf8(out.finish().unwrap()).unwrap();
        assert_eq!(
            text,
            "customer_id,order_id,barcodes\n10,1,\"[11111111111, 11111111318]\"\n11,2,[0042]\n"
        );
    }
}
