//! A fixed-size "have I seen this key before?" filter (a Bloom filter).
//!
//! Finding repeated keys in a file exactly needs either every key in memory
//! or a full sort; both cost as much as the load itself. This filter answers
//! "certainly new" for almost every key in fixed memory, and "maybe seen" for
//! the real repeats plus a few false alarms, which the database then checks
//! exactly. It never says "new" for a key it was given before, so no repeat
//! slips through.

use std::hash::{DefaultHasher, Hash, Hasher};

/// 32 MiB: a few false alarms in a million keys at 3.3M keys, about 2% at
/// 33M. Pages are touched only as bits are set, so small files stay small.
pub const DEFAULT_FILTER_BYTES: usize = 32 << 20;

/// Bits set (and tested) per key.
const PROBES: u64 = 4;

pub struct SeenFilter {
    words: Vec<u64>,
    /// Number of words minus one; the word count is a power of two.
    mask: u64,
}

impl SeenFilter {
    /// A filter of about `bytes` bytes (rounded down to a power of two, at
    /// least 64 bits).
    pub fn with_bytes(bytes: usize) -> Self {
        let wanted = (bytes as u64 / 8).max(1);
        let words = 1u64 << (63 - wanted.leading_zeros());
        Self {
            words: vec![0; words as usize],
            mask: words - 1,
        }
    }

    /// Records `key` and tells whether it may have been recorded before:
    /// `false` means certainly not.
    pub fn check_and_insert<K: Hash + ?Sized>(&mut self, key: &K) -> bool {
        self.check_and_insert_hash(Self::hash(key))
    }

    /// The hash the filter uses for `key`.
    pub fn hash<K: Hash + ?Sized>(key: &K) -> u64 {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        hasher.finish()
    }

    /// [`SeenFilter::check_and_insert`] for many keys at once, by their
    /// [`SeenFilter::hash`], in order: `seen` gets one answer per hash.
    /// With the hashes ready, the loop is short enough that the processor
    /// overlaps the cache misses of many keys instead of waiting for each in
    /// turn; in a filter much larger than the caches, those misses are most
    /// of the cost.
    pub fn check_and_insert_hashes(&mut self, hashes: &[u64], seen: &mut Vec<bool>) {
        seen.clear();
        seen.extend(hashes.iter().map(|&hash| self.check_and_insert_hash(hash)));
    }

    fn check_and_insert_hash(&mut self, hash: u64) -> bool {
        // All probes of a key fall in one 64-bit word (a "blocked" filter):
        // one cache miss per key instead of one per probe, which matters when
        // millions of keys go through a filter much larger than the caches.
        let word = (hash & self.mask) as usize;
        let mut probes = 0u64;
        for i in 0..PROBES {
            probes |= 1 << ((hash >> (32 + 6 * i)) & 63);
        }
        let seen = self.words[word] & probes == probes;
        self.words[word] |= probes;
        seen
    }
}

impl Default for SeenFilter {
    fn default() -> Self {
        Self::with_bytes(DEFAULT_FILTER_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_always_reported() {
        let mut filter = SeenFilter::with_bytes(1 << 10);
        let keys: Vec<String> = (0..5_000).map(|i| format!("BC{i:08}")).collect();
        for key in &keys {
            filter.check_and_insert(key.as_str());
        }
        // A tiny, overfull filter: still every repeat is caught.
        assert!(keys.iter().all(|k| filter.check_and_insert(k.as_str())));
    }

    #[test]
    fn new_keys_are_rarely_flagged_when_the_filter_is_large_enough() {
        let mut filter = SeenFilter::with_bytes(1 << 20);
        let flagged = (0..100_000u64)
            .filter(|i| filter.check_and_insert(i))
            .count();
        // 100k keys over 128k words with 4 probes each: a few dozen false
        // alarms expected.
        assert!(flagged < 200, "{flagged} false alarms");
        assert!(filter.check_and_insert(&42u64));
    }

    #[test]
    fn a_batch_gets_the_answers_of_one_key_at_a_time() {
        let keys: Vec<u64> = (0..20_000).map(|i| i % 7_000).collect();
        let mut one_by_one = SeenFilter::with_bytes(1 << 12);
        let expected: Vec<bool> = keys
            .iter()
            .map(|k| one_by_one.check_and_insert(k))
            .collect();
        let mut batched = SeenFilter::with_bytes(1 << 12);
        let hashes: Vec<u64> = keys.iter().map(SeenFilter::hash).collect();
        let mut seen = vec![true; 3];
        batched.check_and_insert_hashes(&hashes, &mut seen);
        assert_eq!(seen, expected);
        assert!(seen[7_000..].iter().all(|&s| s), "every repeat is caught");
    }

    #[test]
    fn size_is_a_power_of_two_of_at_most_the_bytes_asked() {
        assert_eq!(SeenFilter::with_bytes(1 << 20).words.len() * 8, 1 << 20);
        assert_eq!(SeenFilter::with_bytes(3 << 20).words.len() * 8, 2 << 20);
        assert_eq!(SeenFilter::with_bytes(0).words.len(), 1);
    }
}
