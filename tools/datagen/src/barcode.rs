//! Barcode numbers and the digits written for them: a fixed permutation of
//! an order's slots, so barcodes never collide across files.

use crate::splitmix::mix64;
use crate::{BARCODE_DIGITS, BARCODE_SPACE, MAX_ORDER_ID, SLOTS_PER_ORDER};

/// The barcode number of an order's slot: a fixed permutation of
/// 0..10^11 applied to `order_id * 8 + slot`. It does not depend on the seed,
/// so files with disjoint order id ranges never share a barcode, whatever
/// their seeds; and as a permutation it never repeats one by accident.
pub fn barcode_number(order_id: u64, slot: u64) -> u64 {
    debug_assert!(order_id <= MAX_ORDER_ID && slot < SLOTS_PER_ORDER);
    permute(order_id * SLOTS_PER_ORDER + slot)
}

/// A 4-round Feistel network on 38 bits (2^38 > 10^11), cycle-walked until
/// the result falls inside 0..10^11: a bijection of 0..10^11 that scatters
/// neighbouring inputs across the whole range.
fn permute(mut x: u64) -> u64 {
    const HALF_BITS: u32 = 19;
    const MASK: u64 = (1 << HALF_BITS) - 1;
    const KEYS: [u64; 4] = [
        0x6A09_E667_F3BC_C908,
        0xBB67_AE85_84CA_A73B,
        0x3C6E_F372_FE94_F82B,
        0xA54F_F53A_5F1D_36F1,
    ];
    debug_assert!(x < BARCODE_SPACE);
    loop {
        let (mut left, mut right) = (x >> HALF_BITS, x & MASK);
        for key in KEYS {
            let next = left ^ (mix64(right ^ key) & MASK);
            left = right;
            right = next;
        }
        x = (left << HALF_BITS) | right;
        if x < BARCODE_SPACE {
            return x;
        }
    }
}

/// Formats a barcode number as 11 zero-padded digits.
pub fn format_barcode(number: u64) -> [u8; BARCODE_DIGITS] {
    let mut out = [b'0'; BARCODE_DIGITS];
    let mut n = number;
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out
}

/// Formats an unsigned integer without allocating.
pub(crate) struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    pub(crate) fn new(mut n: u64) -> Self {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Self { buf, start }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn barcode_permutation_is_a_bijection_sample() {
        let mut seen = HashSet::new();
        for order_id in 1..20_000u64 {
            for slot in 0..SLOTS_PER_ORDER {
                let n = barcode_number(order_id, slot);
                assert!(n < BARCODE_SPACE);
                assert!(seen.insert(n), "collision at {order_id}/{slot}");
            }
        }
        assert_eq!(&format_barcode(42), b"00000000042");
        assert_eq!(&format_barcode(99_999_999_999), b"99999999999");
    }
}
