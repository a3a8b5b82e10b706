//! What a load tells about the lines of its file: every rejected, ignored
//! or noteworthy line goes to a temporary `problems` table (by the SQL
//! below, as the load finds it), from which the counts, the report's first
//! problems and the rejects file are read before the commit.

use std::pin::pin;

use futures_util::TryStreamExt;

use super::{LoadCounts, LoadSession};
use crate::domain::outcome::{ProblemCode, ProblemKind, RecordedProblem, Severity};
use crate::postgres::DbError;

/// One reported problem with a line of an input file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub line: u64,
    /// The rule's case, for a reader that sorts problems by what they are.
    pub code: ProblemCode,
    pub severity: Severity,
    pub field: String,
    pub value: String,
    pub reason: String,
}

/// The problems table of a load (created with its staging table): each
/// line's case (`kind`, a [`ProblemCode`]) and the references its reason
/// names; the rules in `domain::outcome` turn them into severity and text.
pub(super) const PROBLEMS_TABLE: &str = "
    CREATE TEMP TABLE problems (
        line bigint, kind text NOT NULL, field text, value text, raw text,
        order_id bigint, other_line bigint, other_id bigint, other_file text,
        detail text) ON COMMIT DROP;";

/// Reports the later rows of a repeated order_id, from a temporary `ranked`
/// table of (line, order_id, customer_id, first_line, first_customer).
pub(super) const ORDER_REPEATS_TO_PROBLEMS: &str = "
    INSERT INTO problems (line, kind, field, value, raw, order_id, other_line, other_id)
    SELECT line,
           CASE WHEN customer_id = first_customer THEN 'repeated_order' ELSE 'conflicting_order' END,
           'customer_id', customer_id::text, order_id || ',' || customer_id,
           order_id, first_line, first_customer
    FROM ranked WHERE line <> first_line;";

/// Reports the later copies of a repeated barcode, from a temporary `ranked`
/// table of (line, barcode, order_id, first_line).
pub(super) const BARCODE_REPEATS_TO_PROBLEMS: &str = "
    INSERT INTO problems (line, kind, field, value, raw, other_line)
    SELECT line, 'repeated_barcode', 'barcode', barcode,
           barcode || ',' || coalesce(order_id::text, ''), first_line
    FROM ranked WHERE line <> first_line;";

/// Collects the accepted barcodes of orders not known yet into a temporary
/// `orphans` table and reports the first of them. `accepted` is the
/// relation of accepted rows (barcode, order_id, line).
pub(super) fn orphans_to_problems(accepted: &str) -> String {
    format!(
        "CREATE TEMP TABLE orphans ON COMMIT DROP AS
             SELECT a.line, a.barcode, a.order_id FROM {accepted} a
             WHERE a.order_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = a.order_id);
         {FIRST_ORPHANS_TO_PROBLEMS}"
    )
}

/// Reports the first of the barcodes in the temporary `orphans` table
/// (line, barcode, order_id), and keeps them all as waiting for orders not
/// known yet (`waiting_barcodes`, which the orders loads resolve).
pub(super) const FIRST_ORPHANS_TO_PROBLEMS: &str = "
    INSERT INTO problems (line, kind, field, value, raw, order_id)
    SELECT line, 'unknown_order', 'order_id', order_id::text, barcode || ',' || order_id, order_id
    FROM (SELECT line, barcode, order_id FROM orphans ORDER BY line LIMIT 100) first_lines;
    INSERT INTO waiting_barcodes (barcode, order_id)
    SELECT barcode, order_id FROM orphans ON CONFLICT (barcode) DO NOTHING;";

/// Moves the staged rejected lines to the problems table.
pub(super) const STAGED_REJECTS_TO_PROBLEMS: &str = "
    INSERT INTO problems (line, kind, field, value, raw, detail)
    SELECT line, 'invalid', field, value, raw, reason FROM staging WHERE reason IS NOT NULL;
    ANALYZE staging;";

impl LoadSession {
    /// Keeps the load's rejected rows for the Problems view (the
    /// `rejected_rows` table), in its transaction.
    pub(super) async fn keep_rejected_rows(&self) -> Result<(), DbError> {
        let rejected = ProblemCode::of_severity(Severity::Rejected);
        self.client()
            .execute(
                "INSERT INTO rejected_rows (ingestion_id, line, kind, field, value, order_id,
                                            other_line, other_id, other_file, detail)
                 SELECT $1, line, kind, field, value, order_id, other_line, other_id, other_file, detail
                 FROM problems WHERE kind = ANY($2) ORDER BY line",
                &[&self.ingestion_id, &rejected],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn counts(
        &self,
        rows_read: u64,
        accepted: i64,
        warnings: i64,
    ) -> Result<LoadCounts, DbError> {
        let rejected = ProblemCode::of_severity(Severity::Rejected);
        let row = self
            .client()
            .query_one(
                "SELECT count(*) FILTER (WHERE kind = ANY($1)),
                        count(*) FILTER (WHERE kind = ANY($2))
                 FROM problems",
                &[&rejected, &ProblemCode::duplicates()],
            )
            .await?;
        Ok(LoadCounts {
            rows_read,
            accepted: accepted as u64,
            rejected: row.get::<_, i64>(0) as u64,
            duplicates: row.get::<_, i64>(1) as u64,
            warnings: warnings as u64,
            orders_without_barcodes: 0,
        })
    }

    /// The first `limit` problems by line, for the report.
    pub async fn first_problems(&self, limit: i64) -> Result<Vec<Problem>, DbError> {
        let rows = self
            .client()
            .query(
                &format!("SELECT {PROBLEM_COLUMNS} FROM problems ORDER BY line, kind LIMIT $1"),
                &[&limit],
            )
            .await?;
        rows.iter().map(Problem::from_row).collect()
    }

    /// Streams every rejected row, by line, to `sink` as
    /// (line, field, value, reason, raw).
    pub async fn for_each_rejected<F, E>(&self, mut sink: F) -> Result<u64, E>
    where
        F: FnMut(u64, &str, &str, &str, &str) -> Result<(), E>,
        E: From<DbError>,
    {
        let rejected = ProblemCode::of_severity(Severity::Rejected);
        let stream = self
            .client()
            .query_raw(
                &format!(
                    "SELECT {PROBLEM_COLUMNS}, coalesce(raw, '') FROM problems
                     WHERE kind = ANY($1) ORDER BY line"
                ),
                [&rejected],
            )
            .await
            .map_err(DbError::from)?;
        let mut stream = pin!(stream);
        let mut written = 0;
        while let Some(row) = stream.try_next().await.map_err(DbError::from)? {
            let problem = Problem::from_row(&row)?;
            sink(
                problem.line,
                &problem.field,
                &problem.value,
                &problem.reason,
                row.get(PROBLEM_COLUMN_COUNT),
            )?;
            written += 1;
        }
        Ok(written)
    }
}

/// What [`Problem::from_row`] reads, in its order.
const PROBLEM_COLUMNS: &str = "line, kind, coalesce(field, ''), coalesce(value, ''),
    order_id, other_line, other_id, other_file, detail";
const PROBLEM_COLUMN_COUNT: usize = 9;

impl Problem {
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, DbError> {
        let kind = ProblemKind::try_from(RecordedProblem {
            code: row.get(1),
            order_id: row.get(4),
            other_line: row.get(5),
            other_id: row.get(6),
            other_file: row.get(7),
            detail: row.get(8),
        })?;
        Ok(Problem {
            line: row.get::<_, i64>(0) as u64,
            code: kind.code(),
            severity: kind.severity(),
            field: row.get(2),
            value: row.get(3),
            reason: kind.reason(),
        })
    }
}
