//! What a load tells about the lines of its file: every rejected, ignored
//! or noteworthy line goes to a temporary `problems` table (by the SQL
//! below, as the load finds it), from which the counts, the report's first
//! problems and the rejects file are read before the commit.

use std::pin::pin;

use futures_util::TryStreamExt;

use super::{LoadCounts, LoadSession};
use crate::postgres::DbError;

/// One reported problem with a line of an input file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub line: u64,
    /// `rejected` (not stored), `ignored` (a no-op repeat) or `warning` (stored).
    pub severity: String,
    pub field: String,
    pub value: String,
    pub reason: String,
}

/// The problems table of a load (created with its staging table).
pub(super) const PROBLEMS_TABLE: &str = "
    CREATE TEMP TABLE problems (
        line bigint, severity text, duplicate boolean NOT NULL DEFAULT false,
        field text, value text, reason text, raw text) ON COMMIT DROP;";

/// Reports the later rows of a repeated order_id, from a temporary `ranked`
/// table of (line, order_id, customer_id, first_line, first_customer).
pub(super) const ORDER_REPEATS_TO_PROBLEMS: &str = "
    INSERT INTO problems (line, severity, duplicate, field, value, reason, raw)
    SELECT line,
           CASE WHEN customer_id = first_customer THEN 'ignored' ELSE 'rejected' END,
           true, 'customer_id', customer_id::text,
           CASE WHEN customer_id = first_customer
                THEN format('order %s repeats line %s with the same customer; ignored', order_id, first_line)
                ELSE format('order %s already belongs to customer %s (line %s); a conflicting customer is rejected', order_id, first_customer, first_line)
           END,
           order_id || ',' || customer_id
    FROM ranked WHERE line <> first_line;";

/// Reports the later copies of a repeated barcode, from a temporary `ranked`
/// table of (line, barcode, order_id, first_line).
pub(super) const BARCODE_REPEATS_TO_PROBLEMS: &str = "
    INSERT INTO problems (line, severity, duplicate, field, value, reason, raw)
    SELECT line, 'rejected', true, 'barcode', barcode,
           format('duplicate barcode: first seen on line %s; the first occurrence wins', first_line),
           barcode || ',' || coalesce(order_id::text, '')
    FROM ranked WHERE line <> first_line;";

/// How many orders without barcodes a load reports line by line (the count
/// covers them all).
pub(super) const ORDERS_WITHOUT_BARCODES_REPORTED: usize = 100;

/// Reports orders without barcodes from `{first_lines}`, a relation (with
/// its alias) of (line, order_id, customer_id) already cut to the lines to
/// report.
pub(super) const ORDERS_WITHOUT_BARCODES_TO_PROBLEMS: &str = "
    INSERT INTO problems (line, severity, field, value, reason, raw)
    SELECT line, 'warning', 'order_id', order_id::text,
           'order has no barcodes (yet): stored, but left out of processed_orders.csv and ticket counts',
           order_id || ',' || customer_id
    FROM {first_lines};";

/// Collects the accepted barcodes of orders not known yet into a temporary
/// `orphans` table and reports the first of them. `{accepted}` is the
/// relation of accepted rows (barcode, order_id, line).
pub(super) const ORPHANS_TO_PROBLEMS: &str = "
    CREATE TEMP TABLE orphans ON COMMIT DROP AS
        SELECT a.line, a.barcode, a.order_id FROM {accepted} a
        WHERE a.order_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = a.order_id);
    INSERT INTO problems (line, severity, field, value, reason, raw)
    SELECT line, 'warning', 'order_id', order_id::text,
           format('order %s is not known yet; the barcode is stored and counts once the order arrives', order_id),
           barcode || ',' || order_id
    FROM (SELECT line, barcode, order_id FROM orphans ORDER BY line LIMIT 100) first_lines;";

/// Moves the staged rejected lines to the problems table.
pub(super) const STAGED_REJECTS_TO_PROBLEMS: &str = "
    INSERT INTO problems (line, severity, field, value, reason, raw)
    SELECT line, 'rejected', field, value, reason, raw FROM staging WHERE reason IS NOT NULL;
    ANALYZE staging;";

impl LoadSession {
    pub(super) async fn counts(
        &self,
        rows_read: u64,
        accepted: i64,
        warnings: i64,
    ) -> Result<LoadCounts, DbError> {
        let row = self
            .client()
            .query_one(
                "SELECT count(*) FILTER (WHERE severity = 'rejected'),
                        count(*) FILTER (WHERE duplicate)
                 FROM problems",
                &[],
            )
            .await?;
        Ok(LoadCounts {
            rows_read,
            accepted: accepted as u64,
            rejected: row.get::<_, i64>(0) as u64,
            duplicates: row.get::<_, i64>(1) as u64,
            warnings: warnings as u64,
        })
    }

    /// The first `limit` problems by line, for the report.
    pub async fn first_problems(&self, limit: i64) -> Result<Vec<Problem>, DbError> {
        let rows = self
            .client()
            .query(
                "SELECT line, severity, coalesce(field, ''), coalesce(value, ''), coalesce(reason, '')
                 FROM problems ORDER BY line, severity LIMIT $1",
                &[&limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Problem {
                line: row.get::<_, i64>(0) as u64,
                severity: row.get(1),
                field: row.get(2),
                value: row.get(3),
                reason: row.get(4),
            })
            .collect())
    }

    /// Streams every rejected row, by line, to `sink` as
    /// (line, field, value, reason, raw).
    pub async fn for_each_rejected<F, E>(&self, mut sink: F) -> Result<u64, E>
    where
        F: FnMut(u64, &str, &str, &str, &str) -> Result<(), E>,
        E: From<DbError>,
    {
        let stream = self
            .client()
            .query_raw(
                "SELECT line, coalesce(field, ''), coalesce(value, ''), coalesce(reason, ''), coalesce(raw, '')
                 FROM problems WHERE severity = 'rejected' ORDER BY line",
                std::iter::empty::<i64>(),
            )
            .await
            .map_err(DbError::from)?;
        let mut stream = pin!(stream);
        let mut written = 0;
        while let Some(row) = stream.try_next().await.map_err(DbError::from)? {
            sink(
                row.get::<_, i64>(0) as u64,
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
            )?;
            written += 1;
        }
        Ok(written)
    }
}
