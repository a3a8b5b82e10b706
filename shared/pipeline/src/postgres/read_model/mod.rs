//! The read queries: what the API answers and the reports show. Request
//! paths read indexes and the maintained aggregates (customer_tickets,
//! pipeline_stats); none scans the barcode table. Each returns named
//! structs with the domain's types, which serialise as the API answers
//! and, with the `openapi` feature, carry the API's schemas.

/// `timestamptz` as RFC 3339 UTC text, so no date crate is needed.
macro_rules! ts {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
    };
}

/// A value kept for one data version: computed once per change, shared by
/// the clones (one per process, as the API holds it).
#[derive(Debug)]
pub struct PerVersion<T>(std::sync::Arc<std::sync::Mutex<Option<(i64, T)>>>);

impl<T> Default for PerVersion<T> {
    fn default() -> Self {
        Self(Default::default())
    }
}

impl<T> Clone for PerVersion<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Copy> PerVersion<T> {
    /// The value kept for `data_version`, if that is the one kept.
    pub fn get(&self, data_version: i64) -> Option<T> {
        let held = *self.0.lock().expect("the cache's lock");
        held.filter(|(version, _)| *version == data_version)
            .map(|(_, value)| value)
    }

    pub fn keep(&self, data_version: i64, value: T) {
        *self.0.lock().expect("the cache's lock") = Some((data_version, value));
    }
}

pub mod analytics;
pub mod customers;
pub mod ingestions;
pub mod orders;
pub mod problems;
