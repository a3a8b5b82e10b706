//! The queries behind the HTTP API: reading orders, customers, inventory and
//! the ingest ledger, and selling tickets. Request paths read indexes and
//! the maintained aggregates (customer_tickets, pipeline_stats); none scans
//! the barcode table.

use std::sync::{Arc, Mutex};

use deadpool_postgres::{GenericClient, Pool};

use order_pipeline::postgres::transaction::Transaction;
use sha2::{Digest, Sha256};
use tokio_postgres::Row;

use order_pipeline::postgres::{DbError, MERGE_LOCK};

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

/// Where a row came from: a line of an ingested file, and/or a sale.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Provenance {
    /// The ingestion (ledger id) of the file the row came from.
    pub ingestion_id: Option<i64>,
    /// That file's key in the bucket.
    pub file: Option<String>,
    /// The line in that file (the header is line 1).
    pub line: Option<i64>,
    /// The sale (POST /orders) that created the order or sold the barcode.
    pub sale_id: Option<i64>,
}

/// An order in a listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OrderSummary {
    pub order_id: i64,
    pub customer_id: i64,
    /// Barcodes (tickets) the order holds.
    pub tickets: i64,
    /// When the order was stored (RFC 3339, UTC).
    pub created_at: String,
}

/// A barcode of an order, with its provenance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OrderBarcode {
    pub barcode: String,
    pub source: Provenance,
}

/// One order with its barcodes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OrderDetail {
    pub order_id: i64,
    pub customer_id: i64,
    pub tickets: i64,
    pub created_at: String,
    pub source: Provenance,
    /// In arrival order (file, then line; sold barcodes by code).
    pub barcodes: Vec<OrderBarcode>,
}

/// A customer: how many orders and tickets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CustomerSummary {
    pub customer_id: i64,
    pub orders: i64,
    pub tickets: i64,
}

/// A row of the ingest ledger.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct IngestionRow {
    pub id: i64,
    pub bucket: String,
    pub key: String,
    /// loading, loaded, rejected or failed
    pub status: String,
    /// orders or barcodes (unknown for a file rejected whole)
    pub kind: Option<String>,
    pub rows_read: i64,
    pub accepted: i64,
    pub rejected: i64,
    pub duplicates: i64,
    pub warnings: i64,
    pub attempts: i32,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub report_key: Option<String>,
    pub rejects_key: Option<String>,
}

/// The latest ledger row, for the summary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LastIngestion {
    pub id: i64,
    pub key: String,
    pub status: String,
    pub finished_at: Option<String>,
}

/// Totals from the aggregates.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
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

/// The statuses a ledger row can have.
pub const INGESTION_STATUSES: [&str; 4] = ["loading", "loaded", "rejected", "failed"];

/// What a sale request came to.
#[derive(Debug)]
pub enum SaleOutcome {
    /// Sold now.
    Sold(OrderDetail),
    /// The Idempotency-Key was used before with the same request: its answer.
    Replayed(OrderDetail),
    /// Fewer unused barcodes than asked for; nothing was sold.
    NotEnough { wanted: i64, available: i64 },
    /// The Idempotency-Key was used before with a different request.
    KeyReused,
}

#[derive(Default)]
struct CustomerTotals {
    data_version: i64,
    customers: i64,
    tickets: i64,
}

/// The API's queries over the pool.
#[derive(Clone)]
pub struct ApiStore {
    pool: Pool,
    /// Customers and tickets need a pass over customer_tickets; the answer
    /// is kept per data version, so it is computed once per change.
    customer_totals: Arc<Mutex<Option<CustomerTotals>>>,
}

const ORDER_SUMMARY_COLUMNS: &str = concat!(
    "o.order_id, o.customer_id, (SELECT count(*) FROM barcodes b WHERE b.order_id = o.order_id), ",
    ts!("o.created_at")
);

fn order_summary(row: &Row) -> OrderSummary {
    OrderSummary {
        order_id: row.get(0),
        customer_id: row.get(1),
        tickets: row.get(2),
        created_at: row.get(3),
    }
}

const INGESTION_COLUMNS: &str = concat!(
    "id, bucket, key, status, kind, rows_read, accepted, rejected, duplicates, warnings, attempts, error, ",
    ts!("started_at"),
    ", ",
    ts!("finished_at"),
    ", duration_ms, report_key, rejects_key"
);

fn ingestion(row: &Row) -> IngestionRow {
    IngestionRow {
        id: row.get(0),
        bucket: row.get(1),
        key: row.get(2),
        status: row.get(3),
        kind: row.get(4),
        rows_read: row.get(5),
        accepted: row.get(6),
        rejected: row.get(7),
        duplicates: row.get(8),
        warnings: row.get(9),
        attempts: row.get(10),
        error: row.get(11),
        started_at: row.get(12),
        finished_at: row.get(13),
        duration_ms: row.get(14),
        report_key: row.get(15),
        rejects_key: row.get(16),
    }
}

/// The fingerprint of a sale request, to tell a retry from a new request
/// reusing an Idempotency-Key.
pub fn sale_fingerprint(customer_id: i64, tickets: i64) -> String {
    let digest = Sha256::digest(format!("sale:v1:{customer_id}:{tickets}"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl ApiStore {
    pub fn new(pool: Pool) -> Self {
        Self {
            pool,
            customer_totals: Arc::default(),
        }
    }

    /// Orders by order_id after `after`, at most `limit + 1` (the extra one
    /// tells whether there is a next page); optionally of one customer.
    pub async fn list_orders(
        &self,
        customer_id: Option<i64>,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<OrderSummary>, DbError> {
        let client = self.pool.get().await?;
        let after = after.unwrap_or(0);
        let rows = match customer_id {
            // orders (customer_id, order_id) index: one range scan.
            Some(customer_id) => {
                let statement = client
                    .prepare_cached(&format!(
                        "SELECT {ORDER_SUMMARY_COLUMNS} FROM orders o
                         WHERE o.customer_id = $1 AND o.order_id > $2
                         ORDER BY o.order_id LIMIT $3"
                    ))
                    .await?;
                client
                    .query(&statement, &[&customer_id, &after, &(limit + 1)])
                    .await?
            }
            None => {
                let statement = client
                    .prepare_cached(&format!(
                        "SELECT {ORDER_SUMMARY_COLUMNS} FROM orders o
                         WHERE o.order_id > $1 ORDER BY o.order_id LIMIT $2"
                    ))
                    .await?;
                client.query(&statement, &[&after, &(limit + 1)]).await?
            }
        };
        Ok(rows.iter().map(order_summary).collect())
    }

    pub async fn order(&self, order_id: i64) -> Result<Option<OrderDetail>, DbError> {
        let client = self.pool.get().await?;
        Ok(order_detail(&client, order_id).await?)
    }

    /// A customer's order and ticket counts; `None` when the customer has
    /// neither orders nor tickets.
    pub async fn customer(&self, customer_id: i64) -> Result<Option<CustomerSummary>, DbError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT (SELECT count(*) FROM orders WHERE customer_id = $1),
                        (SELECT tickets FROM customer_tickets WHERE customer_id = $1)",
            )
            .await?;
        let row = client.query_one(&statement, &[&customer_id]).await?;
        let orders: i64 = row.get(0);
        let tickets: Option<i64> = row.get(1);
        if orders == 0 && tickets.is_none() {
            return Ok(None);
        }
        Ok(Some(CustomerSummary {
            customer_id,
            orders,
            tickets: tickets.unwrap_or(0),
        }))
    }

    /// Top customers by tickets (ties: lower id first) and the data version
    /// they reflect, from one snapshot.
    pub async fn top_customers(
        &self,
        limit: i64,
    ) -> Result<(i64, Vec<order_pipeline::domain::CustomerTickets>), DbError> {
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
        let version = rows.last().map(|r| r.get(0)).unwrap_or(0);
        let top = rows
            .iter()
            .filter_map(|row| {
                Some(order_pipeline::domain::CustomerTickets {
                    customer_id: order_pipeline::domain::CustomerId::from_trusted(
                        row.get::<_, Option<i64>>(1)?,
                    ),
                    tickets: row.get(2),
                })
            })
            .collect();
        Ok((version, top))
    }

    /// The data version alone (for conditional requests).
    pub async fn versions(&self) -> Result<(i64, i64), DbError> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached("SELECT data_version, output_version FROM pipeline_stats")
            .await?;
        let row = client.query_one(&statement, &[]).await?;
        Ok((row.get(0), row.get(1)))
    }

    /// The number of unused barcodes (aggregate), the data version, and up
    /// to `limit + 1` unused codes after `after`, in code order (none for
    /// `limit` 0).
    pub async fn unused_barcodes(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<(i64, i64, Vec<String>), DbError> {
        let client = self.pool.get().await?;
        if limit == 0 {
            // The count alone: no index scan at all.
            let statement = client
                .prepare_cached("SELECT unused_barcodes, data_version FROM pipeline_stats")
                .await?;
            let row = client.query_one(&statement, &[]).await?;
            return Ok((row.get(0), row.get(1), Vec::new()));
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
        Ok((row.get(0), row.get(1), row.get(2)))
    }

    /// The summary, from pipeline_stats, customer_tickets (once per data
    /// version) and the newest ledger row.
    pub async fn summary(&self) -> Result<Summary, DbError> {
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
        let cached = self
            .customer_totals
            .lock()
            .expect("cache lock")
            .as_ref()
            .filter(|t| t.data_version == data_version)
            .map(|t| (t.customers, t.tickets));
        let (customers, tickets, data_version) = match cached {
            Some((customers, tickets)) => (customers, tickets, data_version),
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
                let fresh = CustomerTotals {
                    data_version: totals.get(0),
                    customers: totals.get(1),
                    tickets: totals.get(2),
                };
                let answer = (fresh.customers, fresh.tickets, data_version);
                if fresh.data_version == data_version {
                    *self.customer_totals.lock().expect("cache lock") = Some(fresh);
                }
                answer
            }
        };
        let last_ingestion = row.get::<_, Option<i64>>(5).map(|id| LastIngestion {
            id,
            key: row.get(6),
            status: row.get(7),
            finished_at: row.get(8),
        });
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

    /// Ledger rows, newest first, with ids below `before`; at most
    /// `limit + 1`.
    pub async fn ingestions(
        &self,
        status: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<IngestionRow>, DbError> {
        let client = self.pool.get().await?;
        let before = before.unwrap_or(i64::MAX);
        let rows = match status {
            Some(status) => {
                client
                    .query(
                        &format!(
                            "SELECT {INGESTION_COLUMNS} FROM ingestions
                             WHERE status = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
                        ),
                        &[&status, &before, &(limit + 1)],
                    )
                    .await?
            }
            None => {
                client
                    .query(
                        &format!(
                            "SELECT {INGESTION_COLUMNS} FROM ingestions
                             WHERE id < $1 ORDER BY id DESC LIMIT $2"
                        ),
                        &[&before, &(limit + 1)],
                    )
                    .await?
            }
        };
        Ok(rows.iter().map(ingestion).collect())
    }

    pub async fn ingestion(&self, id: i64) -> Result<Option<IngestionRow>, DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_opt(
                &format!("SELECT {INGESTION_COLUMNS} FROM ingestions WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(ingestion))
    }

    /// Sells `tickets` unused barcodes to a new order of `customer_id`, all
    /// or nothing.
    ///
    /// Runs under the merge lock taken *shared*: sales run side by side, but
    /// never while an ingest merges (which takes it exclusively), so the
    /// aggregates and the "a sold barcode never moves" rule hold. `FOR UPDATE
    /// SKIP LOCKED` hands concurrent sales disjoint barcodes. A retried
    /// request with the same `idempotency_key` gets the first sale back; two
    /// at once are kept apart by the key's unique index (the second waits,
    /// then rolls back and answers with the first sale).
    pub async fn sell(
        &self,
        customer_id: i64,
        tickets: i64,
        idempotency_key: Option<&str>,
    ) -> Result<SaleOutcome, DbError> {
        let fingerprint = sale_fingerprint(customer_id, tickets);
        if let Some(key) = idempotency_key {
            let client = self.pool.get().await?;
            if let Some(outcome) = replay(&client, key, &fingerprint).await? {
                return Ok(outcome);
            }
        }
        // A cancelled request must not hand its connection back inside this
        // transaction (see db::transaction).
        let guard = Transaction::begin(&self.pool, "BEGIN").await?;
        let tx = guard.client();
        tx.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&MERGE_LOCK])
            .await?;
        let rows = tx
            .query(
                "SELECT barcode FROM barcodes WHERE order_id IS NULL
                 ORDER BY barcode LIMIT $1 FOR UPDATE SKIP LOCKED",
                &[&tickets],
            )
            .await?;
        let codes: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        if (codes.len() as i64) < tickets {
            let available = codes.len() as i64;
            guard.end("ROLLBACK").await?;
            return Ok(SaleOutcome::NotEnough {
                wanted: tickets,
                available,
            });
        }
        // The id is free: files may not name ids of the sales range
        // (domain::FIRST_SALE_ORDER_ID), and migration V5 moved the sequence
        // past any a database took before, so nothing (no order, no barcode
        // waiting for one) can be there.
        let order_id: i64 = tx
            .query_one(
                "INSERT INTO orders (order_id, customer_id)
                 VALUES (nextval('sale_order_ids'), $1) RETURNING order_id",
                &[&customer_id],
            )
            .await?
            .get(0);
        let sale = tx
            .query_opt(
                "INSERT INTO sales (order_id, customer_id, tickets, idempotency_key, fingerprint, response)
                 VALUES ($1, $2, $3, $4, $5, '{}')
                 ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                &[
                    &order_id,
                    &customer_id,
                    &(tickets as i32),
                    &idempotency_key,
                    &fingerprint,
                ],
            )
            .await?;
        let Some(sale) = sale else {
            // The same key committed meanwhile: undo ours, answer with theirs.
            guard.end("ROLLBACK").await?;
            let key = idempotency_key.expect("a conflict needs a key");
            return Ok(replay(&self.pool.get().await?, key, &fingerprint)
                .await?
                .unwrap_or(SaleOutcome::KeyReused));
        };
        let sale_id: i64 = sale.get(0);
        tx.execute(
            "UPDATE barcodes SET order_id = $1, sale_id = $2 WHERE barcode = ANY($3)",
            &[&order_id, &sale_id, &codes],
        )
        .await?;
        // The same aggregates an ingest maintains (see db.rs commit).
        tx.execute(
            "INSERT INTO customer_tickets (customer_id, tickets) VALUES ($1, $2)
             ON CONFLICT (customer_id) DO UPDATE
                 SET tickets = customer_tickets.tickets + EXCLUDED.tickets",
            &[&customer_id, &tickets],
        )
        .await?;
        tx.execute(
            "UPDATE pipeline_stats SET orders = orders + 1,
                 unused_barcodes = unused_barcodes - $1,
                 data_version = data_version + 1,
                 output_version = output_version + 1",
            &[&tickets],
        )
        .await?;
        let detail = order_detail(tx, order_id)
            .await?
            .expect("the order was inserted in this transaction");
        let response = serde_json::to_string(&detail).expect("an order serialises");
        tx.execute(
            "UPDATE sales SET response = $2::text::jsonb WHERE id = $1",
            &[&sale_id, &response],
        )
        .await?;
        guard.end("COMMIT").await?;
        Ok(SaleOutcome::Sold(detail))
    }
}

/// The stored answer for an Idempotency-Key, if the key was used.
async fn replay<C: GenericClient>(
    client: &C,
    key: &str,
    fingerprint: &str,
) -> Result<Option<SaleOutcome>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT fingerprint, response::text FROM sales WHERE idempotency_key = $1",
            &[&key],
        )
        .await?;
    Ok(row.map(|row| {
        if row.get::<_, &str>(0) != fingerprint {
            return SaleOutcome::KeyReused;
        }
        match serde_json::from_str::<OrderDetail>(row.get(1)) {
            Ok(detail) => SaleOutcome::Replayed(detail),
            // Written by this code in the same transaction as the sale.
            Err(e) => panic!("stored sale response does not parse: {e}"),
        }
    }))
}

async fn order_detail<C: GenericClient>(
    client: &C,
    order_id: i64,
) -> Result<Option<OrderDetail>, tokio_postgres::Error> {
    // Prepared once per connection: these run on every order lookup.
    let order = client
        .prepare_cached(concat!(
            "SELECT o.order_id, o.customer_id, ",
            ts!("o.created_at"),
            ", o.ingestion_id, i.key, o.source_line, s.id
             FROM orders o
             LEFT JOIN ingestions i ON i.id = o.ingestion_id
             LEFT JOIN sales s ON s.order_id = o.order_id
             WHERE o.order_id = $1"
        ))
        .await?;
    let barcodes = client
        .prepare_cached(
            "SELECT b.barcode::text, b.ingestion_id, i.key, b.source_line, b.sale_id
             FROM barcodes b LEFT JOIN ingestions i ON i.id = b.ingestion_id
             WHERE b.order_id = $1
             ORDER BY b.ingestion_id NULLS LAST, b.source_line, b.barcode",
        )
        .await?;
    let Some(order) = client.query_opt(&order, &[&order_id]).await? else {
        return Ok(None);
    };
    let barcodes = client.query(&barcodes, &[&order_id]).await?;
    let barcodes: Vec<OrderBarcode> = barcodes
        .iter()
        .map(|row| OrderBarcode {
            barcode: row.get(0),
            source: Provenance {
                ingestion_id: row.get(1),
                file: row.get(2),
                line: row.get(3),
                sale_id: row.get(4),
            },
        })
        .collect();
    Ok(Some(OrderDetail {
        order_id: order.get(0),
        customer_id: order.get(1),
        tickets: barcodes.len() as i64,
        created_at: order.get(2),
        source: Provenance {
            ingestion_id: order.get(3),
            file: order.get(4),
            line: order.get(5),
            sale_id: order.get(6),
        },
        barcodes,
    }))
}
