//! The Problems view: what is wrong now, across all files. Two lists are the
//! rows loads rejected and kept (`rejected_rows`): barcodes rejected as
//! copies, and orders claimed by another customer. Two are live states:
//! orders without barcodes, and barcodes waiting for an order not known yet
//! (each resolves itself when the missing rows arrive, so a stored warning
//! would go stale).
//!
//! The waiting barcodes are kept by the loads (`waiting_barcodes`). Unlike
//! the other read queries, the orders without barcodes probe the barcodes'
//! order_id index once per order they pass; their count is kept per data
//! version (see [`ProblemCounts`]), and the pages stop at their limit.

use tokio_postgres::Row;

use super::analytics::CustomerTotalsCache;
use super::orders::Provenance;
use super::PerVersion;
use crate::domain::outcome::{ProblemCode, ProblemKind, RecordedProblem};
use crate::domain::{Barcode, CustomerId, OrderId};
use crate::postgres::{DbError, PgStore};

/// A line of an ingested file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileLine {
    /// The file's key in the bucket (null when the winner was a sale).
    pub file: Option<String>,
    /// The line in it (the header is line 1).
    pub line: Option<i64>,
}

/// An order stored without any barcode.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderWithoutBarcodes {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub order_id: OrderId,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub customer_id: CustomerId,
    pub source: Provenance,
}

/// A barcode stored for an order no file has brought yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitingBarcode {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub barcode: Barcode,
    /// The order it waits for.
    pub order_id: i64,
    pub source: Provenance,
}

/// A later copy of a barcode, rejected: where the copy was and where the
/// copy that won is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RejectedBarcode {
    /// Position in the listing (the cursor's key).
    pub id: i64,
    pub barcode: String,
    /// repeated_barcode (a copy in the same file), barcode_sold (stored and
    /// sold to another order) or barcode_stored (stored; this copy sold
    /// nothing).
    pub kind: String,
    pub copy: FileLine,
    pub winner: FileLine,
    pub reason: String,
}

/// An order a file gave to another customer than the one that won it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderConflict {
    /// Position in the listing (the cursor's key).
    pub id: i64,
    pub order_id: Option<i64>,
    /// The customer the rejected row named.
    pub customer_id: String,
    /// The customer the order belongs to.
    pub winner_customer_id: Option<i64>,
    /// conflicting_order (earlier in the same file) or order_owned (stored).
    pub kind: String,
    pub copy: FileLine,
    pub winner: FileLine,
    pub reason: String,
}

/// A page of a problem list with the list's count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProblemPage<T> {
    pub count: i64,
    pub data_version: i64,
    /// Up to `limit + 1` items (the extra one tells there is a next page).
    pub items: Vec<T>,
}

impl<T> ProblemPage<T> {
    fn map<U>(self, item: impl FnMut(T) -> U) -> ProblemPage<U> {
        ProblemPage {
            count: self.count,
            data_version: self.data_version,
            items: self.items.into_iter().map(item).collect(),
        }
    }
}

/// The count of orders without barcodes, per data version.
pub type ProblemCounts = PerVersion<i64>;

/// The count of orders without barcodes, as a select list and its FROM.
pub(super) const ORDERS_WITHOUT_BARCODES_COUNT: &str = "count(*) FROM orders o
    WHERE NOT EXISTS (SELECT 1 FROM barcodes b WHERE b.order_id = o.order_id)";

const DUPLICATE_KINDS: [ProblemCode; 3] = [
    ProblemCode::RepeatedBarcode,
    ProblemCode::BarcodeSold,
    ProblemCode::BarcodeStored,
];
const CONFLICT_KINDS: [ProblemCode; 2] = [ProblemCode::ConflictingOrder, ProblemCode::OrderOwned];

fn names(kinds: &[ProblemCode]) -> Vec<&'static str> {
    kinds.iter().map(|k| k.as_str()).collect()
}

/// What the rejected-rows listings read, in [`Rejected::from_row`]'s order.
const REJECTED_COLUMNS: &str = "r.id, r.kind, coalesce(r.value, ''), r.line, i.key, r.order_id,
    r.other_line, r.other_id, r.other_file, r.detail";

/// A kept rejected row, with its reason as the report gave it.
struct Rejected {
    id: i64,
    kind: String,
    value: String,
    line: i64,
    file: Option<String>,
    order_id: Option<i64>,
    other_line: Option<i64>,
    other_id: Option<i64>,
    other_file: Option<String>,
    reason: String,
}

impl Rejected {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        let recorded = RecordedProblem {
            code: row.get(1),
            order_id: row.get(5),
            other_line: row.get(6),
            other_id: row.get(7),
            other_file: row.get(8),
            detail: row.get(9),
        };
        let reason = ProblemKind::try_from(recorded.clone())?.reason();
        Ok(Self {
            id: row.get(0),
            kind: recorded.code,
            value: row.get(2),
            line: row.get(3),
            file: row.get(4),
            order_id: recorded.order_id,
            other_line: recorded.other_line,
            other_id: recorded.other_id,
            other_file: recorded.other_file,
            reason,
        })
    }

    fn copy(&self) -> FileLine {
        FileLine {
            file: self.file.clone(),
            line: Some(self.line),
        }
    }

    /// The winner: earlier in the same file for an in-file repeat, else the
    /// stored row's file (none when a sale made it).
    fn winner(&self, in_file: ProblemCode) -> FileLine {
        let same_file = self.kind == in_file.as_str();
        FileLine {
            file: if same_file {
                self.file.clone()
            } else {
                self.other_file.clone()
            },
            line: self.other_line,
        }
    }
}

impl PgStore {
    /// Kept rejected rows of `kinds` after id `after`: the count and up to
    /// `limit + 1` rows.
    async fn rejected_rows(
        &self,
        kinds: &[ProblemCode],
        after: i64,
        limit: i64,
    ) -> Result<ProblemPage<Rejected>, DbError> {
        let client = self.pool.get().await?;
        let kinds = names(kinds);
        let rows = client
            .query(
                &format!(
                    "SELECT {REJECTED_COLUMNS} FROM rejected_rows r
                     LEFT JOIN ingestions i ON i.id = r.ingestion_id
                     WHERE r.kind = ANY($1) AND r.id > $2 ORDER BY r.id LIMIT $3"
                ),
                &[&kinds, &after, &(limit + 1)],
            )
            .await?;
        let totals = client
            .query_one(
                "SELECT (SELECT count(*) FROM rejected_rows WHERE kind = ANY($1)),
                        (SELECT data_version FROM pipeline_stats)",
                &[&kinds],
            )
            .await?;
        Ok(ProblemPage {
            count: totals.get(0),
            data_version: totals.get(1),
            items: rows
                .iter()
                .map(Rejected::from_row)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Barcodes rejected as copies, in the order they were rejected.
    pub async fn rejected_barcodes(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<ProblemPage<RejectedBarcode>, DbError> {
        let page = self.rejected_rows(&DUPLICATE_KINDS, after, limit).await?;
        Ok(page.map(|r| RejectedBarcode {
            id: r.id,
            copy: r.copy(),
            winner: r.winner(ProblemCode::RepeatedBarcode),
            barcode: r.value,
            kind: r.kind,
            reason: r.reason,
        }))
    }

    /// Orders rejected because another customer holds them.
    pub async fn order_conflicts(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<ProblemPage<OrderConflict>, DbError> {
        let page = self.rejected_rows(&CONFLICT_KINDS, after, limit).await?;
        Ok(page.map(|r| OrderConflict {
            id: r.id,
            order_id: r.order_id,
            winner_customer_id: r.other_id,
            copy: r.copy(),
            winner: r.winner(ProblemCode::ConflictingOrder),
            customer_id: r.value,
            kind: r.kind,
            reason: r.reason,
        }))
    }

    /// Orders without barcodes after order_id `after`: how many (kept per
    /// data version in `counts`) and up to `limit + 1` of them.
    pub async fn orders_without_barcodes_page(
        &self,
        counts: &ProblemCounts,
        after: i64,
        limit: i64,
    ) -> Result<ProblemPage<OrderWithoutBarcodes>, DbError> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT o.order_id, o.customer_id, o.ingestion_id, i.key, o.source_line, NULL::bigint
                 FROM orders o LEFT JOIN ingestions i ON i.id = o.ingestion_id
                 WHERE o.order_id > $1
                   AND NOT EXISTS (SELECT 1 FROM barcodes b WHERE b.order_id = o.order_id)
                 ORDER BY o.order_id LIMIT $2",
                &[&after, &(limit + 1)],
            )
            .await?;
        let data_version: i64 = client
            .query_one("SELECT data_version FROM pipeline_stats", &[])
            .await?
            .get(0);
        let count = match counts.get(data_version) {
            Some(count) => count,
            None => {
                // Under the snapshot of the version it is kept for.
                let row = client
                    .query_one(
                        &format!(
                            "SELECT (SELECT data_version FROM pipeline_stats), {ORDERS_WITHOUT_BARCODES_COUNT}"
                        ),
                        &[],
                    )
                    .await?;
                counts.keep(row.get(0), row.get(1));
                row.get(1)
            }
        };
        Ok(ProblemPage {
            count,
            data_version,
            items: rows
                .iter()
                .map(|row| OrderWithoutBarcodes {
                    order_id: OrderId::from_trusted(row.get(0)),
                    customer_id: CustomerId::from_trusted(row.get(1)),
                    source: provenance(row),
                })
                .collect(),
        })
    }

    /// Barcodes waiting for their order, after barcode `after` in code
    /// order: how many (sold barcodes less the tickets of known orders,
    /// from the summary's aggregates and `totals`) and up to `limit + 1` of
    /// them.
    pub async fn waiting_barcodes(
        &self,
        totals: &CustomerTotalsCache,
        after: &str,
        limit: i64,
    ) -> Result<ProblemPage<WaitingBarcode>, DbError> {
        let summary = self.summary(totals).await?;
        let waiting = summary.barcodes - summary.unused_barcodes - summary.tickets;
        let client = self.pool.get().await?;
        let rows = client
            .query(
                "SELECT w.barcode, w.order_id, b.ingestion_id, i.key, b.source_line, b.sale_id
                 FROM waiting_barcodes w JOIN barcodes b USING (barcode)
                 LEFT JOIN ingestions i ON i.id = b.ingestion_id
                 WHERE w.barcode > $1 ORDER BY w.barcode LIMIT $2",
                &[&after, &(limit + 1)],
            )
            .await?;
        Ok(ProblemPage {
            count: waiting,
            data_version: summary.data_version,
            items: rows
                .iter()
                .map(|row| WaitingBarcode {
                    barcode: Barcode::from_trusted(row.get(0)),
                    order_id: row.get(1),
                    source: provenance(row),
                })
                .collect(),
        })
    }
}

/// Columns 2 to 5 of a live list's row: ingestion_id, file, line, sale_id.
fn provenance(row: &Row) -> Provenance {
    Provenance {
        ingestion_id: row.get(2),
        file: row.get(3),
        line: row.get(4),
        sale_id: row.get(5),
    }
}
