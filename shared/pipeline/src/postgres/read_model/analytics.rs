//! Analytics over the maintained aggregates: top customers, the unused
//! barcodes, the summary and the totals, and the versions they reflect.

use super::PerVersion;

use crate::domain::outcome::LedgerStatus;
use crate::domain::{Barcode, CustomerId, CustomerTickets};
use crate::postgres::{DbError, PgStore};

/// The customers with the most tickets and the data version they reflect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopCustomers {
    pub data_version: i64,
    /// Most tickets first; ties by the lower customer_id.
    pub customers: Vec<CustomerTickets>,
}

/// The versions of the data and of processed_orders.csv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// Changes with every committed ingest or sale.
    pub data_version: i64,
    /// Changes whenever processed_orders.csv would.
    pub output_version: i64,
}

/// The unused barcodes: how many, and a page of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedBarcodes {
    /// All unused barcodes (from the maintained aggregate).
    pub count: i64,
    pub data_version: i64,
    /// In code order.
    pub barcodes: Vec<Barcode>,
}

/// The latest ledger row, for the summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LastIngestion {
    pub id: i64,
    pub key: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: LedgerStatus,
    pub finished_at: Option<String>,
}

/// Totals from the aggregates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    pub orders: i64,
    /// Customers holding at least one ticket.
    pub customers: i64,
    /// Sold barcodes of known orders.
    pub tickets: i64,
    pub barcodes: i64,
    pub unused_barcodes: i64,
    /// Rows rejected by ingestion, all files together.
    pub rejected_rows: i64,
    /// Changes with every committed ingest or sale.
    pub data_version: i64,
    pub last_ingestion: Option<LastIngestion>,
}

/// Current totals, kept in step with every load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub orders: i64,
    pub barcodes: i64,
    pub unused_barcodes: i64,
    pub rejected_rows: i64,
    pub data_version: i64,
}

/// The summary's customers and tickets need a pass over customer_tickets;
/// the answer (customers, tickets) is kept per data version, so it is
/// computed once per change.
pub type CustomerTotalsCache = PerVersion<(i64, i64)>;

impl PgStore {
    /// Top customers by tickets (ties: lower id first) and the data version
    /// they reflect, from one snapshot. Reads the maintained aggregate,
    /// never the barcode table.
    pub async fn top_customers(&self, limit: i64) -> Result<TopCustomers, DbError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT (SELECT data_version FROM pipeline_stats), customer_id, tickets
                 FROM (SELECT customer_id, tickets FROM customer_tickets
                       WHERE tickets > 0 ORDER BY tickets DESC, customer_id LIMIT $1) t
                 UNION ALL SELECT data_version, NULL, NULL FROM pipeline_stats",
            )
            .await?;
        let rows = client.query(&statement, &[&limit]).await?;
        let data_version = rows.last().map(|r| r.get(0)).unwrap_or(0);
        let customers = rows
            .iter()
            .filter_map(|row| {
                Some(CustomerTickets {
                    customer_id: CustomerId::from_trusted(row.get::<_, Option<i64>>(1)?),
                    tickets: row.get(2),
                })
            })
            .collect();
        Ok(TopCustomers {
            data_version,
            customers,
        })
    }

    /// The versions alone (for conditional requests).
    pub async fn versions(&self) -> Result<Versions, DbError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached("SELECT data_version, output_version FROM pipeline_stats")
            .await?;
        let row = client.query_one(&statement, &[]).await?;
        Ok(Versions {
            data_version: row.get(0),
            output_version: row.get(1),
        })
    }

    /// The number of unused barcodes (aggregate), the data version, and up
    /// to `limit + 1` unused codes after `after`, in code order (none for
    /// `limit` 0).
    pub async fn unused_barcodes(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<UnusedBarcodes, DbError> {
        let client = self.pool.get().await?;
        if limit == 0 {
            // The count alone: no index scan at all.
            let statement = client
                .prepare_cached("SELECT unused_barcodes, data_version FROM pipeline_stats")
                .await?;
            let row = client.query_one(&statement, &[]).await?;
            return Ok(UnusedBarcodes {
                count: row.get(0),
                data_version: row.get(1),
                barcodes: Vec::new(),
            });
        }
        let statement = client
            .prepare_cached(
                "SELECT s.unused_barcodes, s.data_version,
                        ARRAY(SELECT barcode FROM barcodes
                              WHERE order_id IS NULL AND barcode > $1
                              ORDER BY barcode LIMIT $2)
                 FROM pipeline_stats s",
            )
            .await?;
        let row = client
            .query_one(&statement, &[&after.unwrap_or(""), &(limit + 1)])
            .await?;
        let barcodes: Vec<String> = row.get(2);
        Ok(UnusedBarcodes {
            count: row.get(0),
            data_version: row.get(1),
            barcodes: barcodes.into_iter().map(Barcode::from_trusted).collect(),
        })
    }

    /// The summary, from pipeline_stats, customer_tickets (once per data
    /// version) and the newest ledger row.
    pub async fn summary(&self, cache: &CustomerTotalsCache) -> Result<Summary, DbError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(concat!(
                "SELECT s.orders, s.barcodes, s.unused_barcodes, s.rejected_rows, s.data_version,
                        i.id, i.key, i.status, ",
                ts!("i.finished_at"),
                " FROM pipeline_stats s
                 LEFT JOIN LATERAL (SELECT id, key, status, finished_at FROM ingestions
                                    ORDER BY id DESC LIMIT 1) i ON true"
            ))
            .await?;
        let row = client.query_one(&statement, &[]).await?;
        let data_version: i64 = row.get(4);
        let (customers, tickets) = match cache.get(data_version) {
            Some(totals) => totals,
            None => {
                // One statement: the counts and their version share a snapshot.
                let totals = client
                    .query_one(
                        "SELECT data_version,
                                (SELECT count(*) FROM customer_tickets WHERE tickets > 0),
                                (SELECT coalesce(sum(tickets), 0)::bigint FROM customer_tickets)
                         FROM pipeline_stats",
                        &[],
                    )
                    .await?;
                let fresh = (totals.get(1), totals.get(2));
                if totals.get::<_, i64>(0) == data_version {
                    cache.keep(data_version, fresh);
                }
                fresh
            }
        };
        let last_ingestion = match row.get::<_, Option<i64>>(5) {
            Some(id) => Some(LastIngestion {
                id,
                key: row.get(6),
                status: row.get::<_, String>(7).parse()?,
                finished_at: row.get(8),
            }),
            None => None,
        };
        Ok(Summary {
            orders: row.get(0),
            customers,
            tickets,
            barcodes: row.get(1),
            unused_barcodes: row.get(2),
            rejected_rows: row.get(3),
            data_version,
            last_ingestion,
        })
    }

    pub async fn totals(&self) -> Result<Totals, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT orders, barcodes, unused_barcodes, rejected_rows, data_version FROM pipeline_stats",
                &[],
            )
            .await?;
        Ok(Totals {
            orders: row.get(0),
            barcodes: row.get(1),
            unused_barcodes: row.get(2),
            rejected_rows: row.get(3),
            data_version: row.get(4),
        })
    }

    /// Orders that have no barcodes: stored, but not in processed_orders.csv.
    /// Scans; for summaries, not for request paths.
    pub async fn orders_without_barcodes(&self) -> Result<i64, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                &format!("SELECT {}", super::problems::ORDERS_WITHOUT_BARCODES_COUNT),
                &[],
            )
            .await?;
        Ok(row.get(0))
    }
}
