//! processed_orders.csv as segments by order_id range: each segment is an
//! object of its own (under [`SEGMENTS_PREFIX`]), and the published file is
//! the segments one after the other, assembled on the store's side. A
//! publish rewrites only the segments whose orders changed, so it costs
//! what changed, not the file.
//!
//! Segments are cut at order boundaries once they reach the target size;
//! every segment but the last holds at least the store's smallest part
//! (S3's 5 MiB), which is what a multipart copy needs.

use std::io::{BufWriter, Write};

use super::ProcessedOrdersWriter;
use crate::domain::ProcessedOrder;

/// Where the segments live, beside the published file.
pub const SEGMENTS_PREFIX: &str = "processed/segments/";

/// The first segment starts below every order and holds the header.
pub const FIRST_SEGMENT_START: i64 = i64::MIN;

/// At most this many segments make the file: S3 composes at most 10,000
/// parts, and half of that leaves room for segments that grew.
const MAX_SEGMENTS: u64 = 5_000;

/// A segment as published: the orders from `first_order_id` up to the next
/// segment's first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub first_order_id: i64,
    pub object_key: String,
    /// Its ETag when written, when the store gave one.
    pub etag: Option<String>,
    pub bytes: u64,
    pub orders: u64,
}

/// How large segments are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLayout {
    /// A segment is cut once it holds this many bytes. Smaller segments make
    /// a scattered change cheaper (each touched segment is rewritten whole)
    /// and the assembly dearer (one part copy per segment).
    pub target_bytes: u64,
}

impl Default for SegmentLayout {
    fn default() -> Self {
        Self {
            target_bytes: 8 * 1024 * 1024,
        }
    }
}

impl SegmentLayout {
    /// The size to cut at in a file of about `file_bytes`, on a store whose
    /// parts but the last need `min_part` bytes: never below that, and
    /// large enough that the file stays within [`MAX_SEGMENTS`].
    pub fn target_for(&self, file_bytes: u64, min_part: u64) -> u64 {
        self.target_bytes
            .max(min_part)
            .max(file_bytes / MAX_SEGMENTS)
            .max(1)
    }
}

/// The keys one publish writes its segments under: its number at the
/// destination and a random part, so that no publish (of this database, or
/// of another one writing the same bucket) overwrites a segment in use.
#[derive(Debug, Clone)]
pub struct SegmentKeys(String);

impl SegmentKeys {
    pub fn for_publish(publish: i64) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Self(format!("{SEGMENTS_PREFIX}p{publish:08}-{random:016x}-"))
    }

    /// The key of the `index`-th segment.
    pub fn key(&self, index: usize) -> String {
        format!("{}{index:05}.csv", self.0)
    }
}

/// A segment written to a temporary file, to be uploaded.
pub struct NewSegment {
    pub first_order_id: i64,
    pub file: tempfile::NamedTempFile,
    pub bytes: u64,
    pub orders: u64,
}

/// Writes consecutive orders (in order_id order) as new segments, cutting
/// one once it reaches the target. Memory stays flat: each segment goes to
/// a temporary file.
pub struct SegmentWriter {
    target: u64,
    done: Vec<NewSegment>,
    current: SegmentFile,
}

impl SegmentWriter {
    /// Segments for the orders from `first_order_id` on; the first segment
    /// of the file ([`FIRST_SEGMENT_START`]) starts with the header.
    pub fn new(first_order_id: i64, target: u64) -> std::io::Result<Self> {
        Ok(Self {
            target,
            done: Vec::new(),
            current: SegmentFile::new(first_order_id)?,
        })
    }

    pub fn write(&mut self, order: &ProcessedOrder) -> std::io::Result<()> {
        if self.current.orders > 0 && self.current.writer.bytes() >= self.target {
            let next = SegmentFile::new(order.order_id.get())?;
            let full = std::mem::replace(&mut self.current, next);
            self.done.push(full.finish()?);
        }
        self.current.write(order)
    }

    /// True while everything written is one segment of fewer than `bytes`:
    /// too small to be followed by another, so whoever writes a range of
    /// the file must take in the next segment too.
    pub fn is_one_below(&self, bytes: u64) -> bool {
        self.done.is_empty() && self.current.writer.bytes() < bytes
    }

    /// The segments written. A last one smaller than `min_part` joins the
    /// one before it, so every segment but the last of the file stays a
    /// valid part; an empty one (no orders, no header) is dropped, its range
    /// left to the segment before.
    pub fn finish(mut self, min_part: u64) -> std::io::Result<Vec<NewSegment>> {
        let last = self.current.finish()?;
        match self.done.last_mut() {
            Some(before) if last.bytes < min_part => before.append(last)?,
            _ if last.bytes == 0 => {}
            _ => self.done.push(last),
        }
        Ok(self.done)
    }
}

/// The segment being written.
struct SegmentFile {
    first_order_id: i64,
    file: tempfile::NamedTempFile,
    writer: ProcessedOrdersWriter<BufWriter<std::fs::File>>,
    orders: u64,
}

impl SegmentFile {
    fn new(first_order_id: i64) -> std::io::Result<Self> {
        let file = tempfile::NamedTempFile::new()?;
        let output = BufWriter::with_capacity(256 * 1024, file.reopen()?);
        let writer = if first_order_id == FIRST_SEGMENT_START {
            ProcessedOrdersWriter::new(output).map_err(std::io::Error::other)?
        } else {
            ProcessedOrdersWriter::continuing(output)
        };
        Ok(Self {
            first_order_id,
            file,
            writer,
            orders: 0,
        })
    }

    fn write(&mut self, order: &ProcessedOrder) -> std::io::Result<()> {
        self.orders += 1;
        self.writer.write(order).map_err(std::io::Error::other)
    }

    fn finish(self) -> std::io::Result<NewSegment> {
        let bytes = self.writer.bytes();
        self.writer.finish()?;
        Ok(NewSegment {
            first_order_id: self.first_order_id,
            file: self.file,
            bytes,
            orders: self.orders,
        })
    }
}

impl NewSegment {
    /// Appends `next`, the segment that follows, to this one.
    fn append(&mut self, next: NewSegment) -> std::io::Result<()> {
        let mut output = std::fs::OpenOptions::new()
            .append(true)
            .open(self.file.path())?;
        std::io::copy(&mut next.file.reopen()?, &mut output)?;
        output.flush()?;
        self.bytes += next.bytes;
        self.orders += next.orders;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Barcode, CustomerId, OrderId};

    fn order(order_id: i64) -> ProcessedOrder {
        ProcessedOrder {
            customer_id: CustomerId::from_trusted(7),
            order_id: OrderId::from_trusted(order_id),
            barcodes: vec![Barcode::from_trusted(format!("{order_id:08}"))],
        }
    }

    fn text(segment: &NewSegment) -> String {
        std::fs::read_to_string(segment.file.path()).unwrap()
    }

    /// A line of `order` is 16 bytes for ids 10-99 ("7,10,[00000010]\n"),
    /// 17 for 100-999.
    fn written(first: i64, orders: std::ops::Range<i64>, target: u64, min: u64) -> Vec<NewSegment> {
        let mut writer = SegmentWriter::new(first, target).unwrap();
        for id in orders {
            writer.write(&order(id)).unwrap();
        }
        writer.finish(min).unwrap()
    }

    #[test]
    fn segments_are_cut_at_order_boundaries_once_they_reach_the_target() {
        let segments = written(FIRST_SEGMENT_START, 10..16, 40, 1);
        let firsts: Vec<i64> = segments.iter().map(|s| s.first_order_id).collect();
        // The header (29 bytes) and one line reach 40; then two lines each.
        assert_eq!(firsts, [FIRST_SEGMENT_START, 11, 14]);
        assert!(text(&segments[0]).starts_with("customer_id,order_id,barcodes\n7,10,"));
        assert_eq!(
            text(&segments[1]),
            "7,11,[00000011]\n7,12,[00000012]\n7,13,[00000013]\n"
        );
        let whole: String = segments.iter().map(text).collect();
        assert_eq!(whole.lines().count(), 7);
        for segment in &segments {
            assert_eq!(segment.bytes, text(segment).len() as u64);
        }
        assert_eq!(segments.iter().map(|s| s.orders).sum::<u64>(), 6);
    }

    #[test]
    fn a_last_segment_below_the_smallest_part_joins_the_one_before() {
        // Cut at 34 bytes (two lines), the seventh order alone is 17 bytes.
        let segments = written(100, 100..107, 34, 20);
        let sizes: Vec<u64> = segments.iter().map(|s| s.bytes).collect();
        assert_eq!(sizes, [34, 34, 51]);
        assert_eq!(segments[2].orders, 3);
        assert_eq!(
            text(&segments[2]),
            "7,104,[00000104]\n7,105,[00000105]\n7,106,[00000106]\n"
        );
        assert_eq!(
            segments[0].first_order_id, 100,
            "the range's start, not the first order's"
        );
    }

    #[test]
    fn a_range_without_orders_writes_no_segment_but_the_first_keeps_its_header() {
        assert!(written(5, 0..0, 32, 20).is_empty());
        let header_only = written(FIRST_SEGMENT_START, 0..0, 32, 20);
        assert_eq!(header_only.len(), 1);
        assert_eq!(text(&header_only[0]), "customer_id,order_id,barcodes\n");
    }

    #[test]
    fn the_target_grows_with_the_file_and_never_falls_below_the_smallest_part() {
        let layout = SegmentLayout { target_bytes: 100 };
        assert_eq!(layout.target_for(1_000, 10), 100);
        assert_eq!(layout.target_for(1_000, 500), 500);
        assert_eq!(layout.target_for(MAX_SEGMENTS * 1_000, 10), 1_000);
    }
}
