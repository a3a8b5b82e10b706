//! The sold barcodes of a first barcodes load, kept on the client while
//! they stream into the table, sorted by order, and handed out order by
//! order: processed_orders.csv is then a merge with the orders in order_id
//! order, instead of PostgreSQL joining and sorting every barcode again.

use std::io::{self, Read, Write};

use super::external_sort::{read_record_start, Record, Sorted};
use crate::domain::Barcode;

/// A sold barcode, ordered as processed_orders.csv lists it: by order, then
/// by line in the file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct SoldBarcode {
    pub(super) order_id: i64,
    pub(super) line: u64,
    pub(super) barcode: Barcode,
}

/// What a small heap allocation costs beyond its bytes.
const ALLOCATION_OVERHEAD: usize = 16;

impl Record for SoldBarcode {
    fn memory(&self) -> usize {
        std::mem::size_of::<Self>() + self.barcode.as_str().len() + ALLOCATION_OVERHEAD
    }

    /// order_id, line, then the barcode's length in one byte and its bytes
    /// (a barcode is at most [`Barcode::MAX_LEN`] ASCII characters).
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let barcode = self.barcode.as_str().as_bytes();
        let length = u8::try_from(barcode.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("barcode of {} bytes cannot be spilled", barcode.len()),
            )
        })?;
        out.write_all(&self.order_id.to_le_bytes())?;
        out.write_all(&self.line.to_le_bytes())?;
        out.write_all(&[length])?;
        out.write_all(barcode)
    }

    fn read_from(input: &mut impl Read) -> io::Result<Option<Self>> {
        let mut head = [0u8; 17];
        if !read_record_start(input, &mut head)? {
            return Ok(None);
        }
        let order_id = i64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
        let line = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
        let mut barcode = vec![0u8; usize::from(head[16])];
        input.read_exact(&mut barcode)?;
        let barcode = String::from_utf8(barcode)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(Some(Self {
            order_id,
            line,
            barcode: Barcode::from_trusted(barcode),
        }))
    }
}

/// Hands out the sorted sold barcodes order by order, as the orders arrive
/// in ascending order_id. Barcodes of an order that never arrives are the
/// orphans: stored, but not part of processed_orders.csv.
pub(super) struct BarcodesByOrder {
    sorted: Sorted<SoldBarcode>,
    head: Option<SoldBarcode>,
    orphans: i64,
}

impl BarcodesByOrder {
    pub(super) fn new(mut sorted: Sorted<SoldBarcode>) -> io::Result<Self> {
        let head = sorted.next().transpose()?;
        Ok(Self {
            sorted,
            head,
            orphans: 0,
        })
    }

    fn advance(&mut self) -> io::Result<Option<SoldBarcode>> {
        let next = self.sorted.next().transpose()?;
        Ok(std::mem::replace(&mut self.head, next))
    }

    /// The barcodes of `order_id` in file order (none when it has none).
    /// Calls must come in ascending order_id; the barcodes passed over on
    /// the way belong to no order and count as orphans.
    pub(super) fn of(&mut self, order_id: i64) -> io::Result<Vec<Barcode>> {
        let mut barcodes = Vec::new();
        while self.head.as_ref().is_some_and(|h| h.order_id <= order_id) {
            let head = self.advance()?.expect("a head was there");
            if head.order_id == order_id {
                barcodes.push(head.barcode);
            } else {
                self.orphans += 1;
            }
        }
        Ok(barcodes)
    }

    /// The orphans: barcodes passed over, and those left after the last order.
    pub(super) fn orphans(mut self) -> io::Result<i64> {
        while self.advance()?.is_some() {
            self.orphans += 1;
        }
        Ok(self.orphans)
    }
}

#[cfg(test)]
mod tests {
    use super::super::external_sort::ExternalSorter;
    use super::*;

    fn sold(order_id: i64, line: u64, barcode: &str) -> SoldBarcode {
        SoldBarcode {
            order_id,
            line,
            barcode: Barcode::from_trusted(barcode.to_owned()),
        }
    }

    fn texts(barcodes: Vec<Barcode>) -> Vec<String> {
        barcodes
            .into_iter()
            .map(|b| b.as_str().to_owned())
            .collect()
    }

    #[test]
    fn a_spilled_barcode_reads_back_the_same() {
        let barcode = sold(-7, u64::MAX, &"0".repeat(Barcode::MAX_LEN));
        let mut run = Vec::new();
        barcode.write_to(&mut run).unwrap();
        sold(1, 2, "A").write_to(&mut run).unwrap();
        let mut input = run.as_slice();
        assert_eq!(SoldBarcode::read_from(&mut input).unwrap(), Some(barcode));
        assert_eq!(
            SoldBarcode::read_from(&mut input).unwrap(),
            Some(sold(1, 2, "A"))
        );
        assert_eq!(SoldBarcode::read_from(&mut input).unwrap(), None);
        // A record cut inside its barcode is an error, not an end.
        let mut cut = &run[..run.len() - 1];
        SoldBarcode::read_from(&mut cut).unwrap();
        assert!(SoldBarcode::read_from(&mut cut).is_err());
    }

    #[test]
    fn barcodes_come_by_order_in_file_order_and_strays_are_orphans() {
        for budget in [usize::MAX, 1] {
            let mut sorter = ExternalSorter::new(budget);
            for barcode in [
                sold(3, 9, "C2"),
                sold(1, 5, "A2"),
                sold(2, 1, "ORPHAN1"),
                sold(3, 4, "C1"),
                sold(1, 2, "A1"),
                sold(9, 3, "ORPHAN2"),
            ] {
                sorter.push(barcode).unwrap();
            }
            let mut by_order = BarcodesByOrder::new(sorter.finish().unwrap()).unwrap();
            assert_eq!(texts(by_order.of(1).unwrap()), ["A1", "A2"]);
            assert_eq!(texts(by_order.of(3).unwrap()), ["C1", "C2"]);
            assert!(by_order.of(4).unwrap().is_empty());
            assert_eq!(by_order.orphans().unwrap(), 2, "orders 2 and 9 never came");
        }
    }

    #[test]
    fn a_known_order_between_others_gets_its_barcodes() {
        let mut sorter = ExternalSorter::new(usize::MAX);
        for barcode in [sold(1, 1, "A"), sold(2, 2, "B"), sold(3, 3, "C")] {
            sorter.push(barcode).unwrap();
        }
        let mut by_order = BarcodesByOrder::new(sorter.finish().unwrap()).unwrap();
        assert_eq!(texts(by_order.of(2).unwrap()), ["B"]);
        assert_eq!(by_order.orphans().unwrap(), 2, "orders 1 and 3 never came");
    }
}
