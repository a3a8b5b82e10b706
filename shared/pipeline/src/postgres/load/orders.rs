//! Loading an orders file: the first row of an order_id wins; a repeat
//! with the same customer is ignored, with another customer rejected; a
//! stored order is never rewritten.

use tokio::sync::mpsc;

use super::ranking;
use super::table::ORDERS_TABLE;
use super::{Batch, LoadCounts, LoadSession, OrderAtLine};
use crate::domain::outcome::FIRST_ORDERS_WITHOUT_BARCODES;
use crate::domain::OrderRow;
use crate::postgres::{aggregates, locks, DbError};

impl LoadSession {
    /// The staged way: every row through the staging table, one sort for the
    /// repeats within the file, then the merge with the stored orders under
    /// the merge lock.
    pub(super) async fn load_orders_staged(
        &mut self,
        batches: mpsc::Receiver<Batch<OrderRow>>,
    ) -> Result<LoadCounts, DbError> {
        let rows_read = self.stage(batches).await?;
        let client = self.client();
        // One sort finds both the first row of each order and its repeats.
        client.batch_execute(&ranking::ORDERS.staged_rows()).await?;
        locks::take_merge_lock(client).await?;
        client
            .batch_execute(
                "CREATE TEMP TABLE checked ON COMMIT DROP AS
                     SELECT r.order_id, r.customer_id, r.line,
                            o.customer_id AS stored_customer, o.ingestion_id AS stored_ingestion,
                            o.source_line AS stored_line
                     FROM ranked r LEFT JOIN orders o USING (order_id)
                     WHERE r.line = r.first_line;
                 INSERT INTO problems (line, kind, field, value, raw, order_id, other_line, other_id, other_file)
                 SELECT c.line,
                        CASE WHEN c.stored_customer = c.customer_id THEN 'order_stored' ELSE 'order_owned' END,
                        'customer_id', c.customer_id::text, c.order_id || ',' || c.customer_id,
                        c.order_id, c.stored_line, c.stored_customer, i.key
                 FROM checked c LEFT JOIN ingestions i ON i.id = c.stored_ingestion
                 WHERE c.stored_customer IS NOT NULL;
                 CREATE TEMP TABLE new_orders ON COMMIT DROP AS
                     SELECT order_id, customer_id, line FROM checked WHERE stored_customer IS NULL;
                 ANALYZE new_orders;",
            )
            .await?;
        let bulk = self.bulk_mode("orders", "new_orders").await?;
        if bulk {
            self.begin_shadow(&ORDERS_TABLE).await?;
        }
        let client = self.client();
        client
            .execute(
                "INSERT INTO orders (order_id, customer_id, ingestion_id, source_line)
                 SELECT order_id, customer_id, $1, line FROM new_orders ORDER BY order_id",
                &[&self.ingestion_id],
            )
            .await?;
        if bulk {
            client.batch_execute(ORDERS_TABLE.build).await?;
        }
        self.merge_order_aggregates(rows_read, "new_orders").await
    }

    /// Direct mode for orders: every row the filter did not flag went
    /// straight into the empty shadow, so its keys are unique and its indexes
    /// are built at once. The few flagged rows are then checked exactly
    /// against each other and the table (by index), and the first line of
    /// each order_id that only staging holds is added. As for barcodes,
    /// analyzing the table is left to autovacuum: building the indexes
    /// already told the planner its size.
    pub(super) async fn load_orders_direct(
        &mut self,
        batches: mpsc::Receiver<Batch<OrderRow>>,
    ) -> Result<LoadCounts, DbError> {
        // The rows copied come in line order: the first of them are the
        // first candidates for the orders without barcodes the report names.
        let mut copied = 0i64;
        let mut first_copied = Vec::with_capacity(FIRST_ORDERS_WITHOUT_BARCODES);
        let rows_read = self
            .stage_direct(batches, |row: OrderRow| {
                copied += 1;
                if first_copied.len() < FIRST_ORDERS_WITHOUT_BARCODES {
                    first_copied.push(OrderAtLine {
                        line: row.line,
                        order_id: row.order_id.get(),
                    });
                }
                Ok(())
            })
            .await?;
        self.client()
            .batch_execute(&format!(
                "{build}{settle}",
                build = ORDERS_TABLE.build,
                settle = ranking::ORDERS.flagged_rows(self.ingestion_id),
            ))
            .await?;
        let no_barcodes_yet: bool = self
            .client()
            .query_one("SELECT NOT EXISTS (SELECT 1 FROM barcodes)", &[])
            .await?
            .get(0);
        if no_barcodes_yet {
            self.merge_first_order_aggregates(rows_read, copied, first_copied)
                .await
        } else {
            self.merge_order_aggregates(
                rows_read,
                "(SELECT order_id, customer_id, source_line AS line FROM orders)",
            )
            .await
        }
    }

    /// The aggregates of a first orders load before any barcode: no ticket
    /// moves and every order is without barcodes, so the counts and the
    /// first ones come from the rows copied and the few flagged rows that
    /// won, not from a scan of the table.
    async fn merge_first_order_aggregates(
        &mut self,
        rows_read: u64,
        copied: i64,
        first_copied: Vec<OrderAtLine>,
    ) -> Result<LoadCounts, DbError> {
        // The first winners by line, each row also carrying how many won.
        let first_won = self
            .client()
            .query(
                "SELECT line, order_id, count(*) OVER () FROM ranked
                 WHERE line = first_line AND NOT copied ORDER BY line LIMIT $1",
                &[&(FIRST_ORDERS_WITHOUT_BARCODES as i64)],
            )
            .await?;
        let won: i64 = first_won.first().map_or(0, |row| row.get(2));
        let mut first = first_copied;
        first.extend(first_won.iter().map(|row| OrderAtLine {
            line: row.get::<_, i64>(0) as u64,
            order_id: row.get(1),
        }));
        first.sort_unstable_by_key(|order| order.line);
        first.truncate(FIRST_ORDERS_WITHOUT_BARCODES);
        self.first_without_barcodes = first;
        let inserted = copied + won;
        self.deltas.orders += inserted;
        let mut counts = self.counts(rows_read, inserted, 0).await?;
        counts.orders_without_barcodes = inserted as u64;
        Ok(counts)
    }

    /// Tickets of the new orders (from barcodes that arrived first, which
    /// wait no more), the first orders without barcodes, and the counts. `new_orders` is the
    /// relation of new orders (order_id, customer_id, line); the join is a
    /// plain query into a temporary table, so it may run in parallel. It
    /// names the new orders' id range for barcodes too, so their order_id
    /// index is scanned over it: with no statistics on barcodes yet (a
    /// first load leaves them to autovacuum), the planner scanned all of
    /// barcodes instead, 7.8 s against 0.3 s for 100k orders onto 10M.
    async fn merge_order_aggregates(
        &mut self,
        rows_read: u64,
        new_orders: &str,
    ) -> Result<LoadCounts, DbError> {
        let client = self.client();
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE held ON COMMIT DROP AS
                     SELECT n.order_id, n.customer_id, count(*) AS tickets
                     FROM barcodes b JOIN {new_orders} n USING (order_id)
                     WHERE b.order_id BETWEEN (SELECT min(order_id) FROM {new_orders} m)
                                          AND (SELECT max(order_id) FROM {new_orders} m)
                     GROUP BY n.order_id, n.customer_id;
                 CREATE TEMP TABLE changed_orders ON COMMIT DROP AS SELECT order_id FROM held;
                 {tickets};
                 DELETE FROM waiting_barcodes w USING held h WHERE w.order_id = h.order_id;",
                tickets = aggregates::add_customer_tickets(
                    "SELECT customer_id, sum(tickets) FROM held GROUP BY customer_id"
                ),
            ))
            .await?;
        let merged = client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM {new_orders} n), count(*),
                            coalesce(sum(tickets), 0)::bigint
                     FROM held"
                ),
                &[],
            )
            .await?;
        let inserted: i64 = merged.get(0);
        let with_barcodes: i64 = merged.get(1);
        let first = client
            .query(
                &format!(
                    "SELECT n.line, n.order_id FROM {new_orders} n
                     WHERE NOT EXISTS (SELECT 1 FROM held h WHERE h.order_id = n.order_id)
                     ORDER BY n.line LIMIT $1"
                ),
                &[&(FIRST_ORDERS_WITHOUT_BARCODES as i64)],
            )
            .await?;
        self.first_without_barcodes = first
            .iter()
            .map(|row| OrderAtLine {
                line: row.get::<_, i64>(0) as u64,
                order_id: row.get(1),
            })
            .collect();
        self.changed_lines = super::ChangedLines::Listed;
        self.deltas.orders += inserted;
        self.deltas.tickets += merged.get::<_, i64>(2);
        let mut counts = self.counts(rows_read, inserted, 0).await?;
        counts.orders_without_barcodes = (inserted - with_barcodes) as u64;
        Ok(counts)
    }
}
