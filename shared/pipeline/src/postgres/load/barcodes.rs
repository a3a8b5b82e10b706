//! Loading a barcodes file: the first occurrence of a barcode wins (by
//! line in the file, then the stored one); a stored unsold barcode becomes
//! sold when a later file assigns it, a sold one never moves.

use std::pin::pin;

use futures_util::TryStreamExt;
use tokio::sync::mpsc;

use super::problems::FIRST_ORPHANS_TO_PROBLEMS;
use super::ranking;
use super::table::BARCODES_TABLE;
use super::{Batch, LoadCounts, LoadSession};
use crate::domain::{Barcode, BarcodeRow, OrderId};
use crate::postgres::export::ExportSink;
use crate::postgres::external_sort::ExternalSorter;
use crate::postgres::sold_barcodes::SoldBarcode;
use crate::postgres::{aggregates, locks, DbError};

/// Barcode rows a load accepted: new ones (some unsold), and stored unsold
/// ones it sold.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct AcceptedBarcodes {
    pub inserted: i64,
    pub inserted_unused: i64,
    pub sold_later: i64,
}

impl LoadSession {
    /// The staged way: every row through the staging table, one sort for the
    /// repeats within the file, then the merge with the stored barcodes
    /// under the merge lock.
    pub(super) async fn load_barcodes_staged(
        &mut self,
        batches: mpsc::Receiver<Batch<BarcodeRow>>,
    ) -> Result<LoadCounts, DbError> {
        let rows_read = self.stage(batches).await?;
        let client = self.client();
        client
            .batch_execute(&ranking::BARCODES.staged_rows())
            .await?;
        locks::take_merge_lock(client).await?;
        client
            .batch_execute(
                "CREATE TEMP TABLE checked ON COMMIT DROP AS
                     SELECT r.barcode, r.order_id, r.line, b.barcode IS NOT NULL AS stored,
                            b.order_id AS stored_order, b.ingestion_id AS stored_ingestion,
                            b.source_line AS stored_line
                     FROM ranked r LEFT JOIN barcodes b USING (barcode)
                     WHERE r.line = r.first_line;
                 INSERT INTO problems (line, kind, field, value, raw, other_line, other_id, other_file)
                 SELECT c.line,
                        CASE WHEN c.stored_order IS NOT NULL AND c.order_id IS DISTINCT FROM c.stored_order
                             THEN 'barcode_sold' ELSE 'barcode_stored' END,
                        'barcode', c.barcode, c.barcode || ',' || coalesce(c.order_id::text, ''),
                        c.stored_line, c.stored_order, i.key
                 FROM checked c LEFT JOIN ingestions i ON i.id = c.stored_ingestion
                 WHERE c.stored AND NOT (c.stored_order IS NULL AND c.order_id IS NOT NULL);
                 CREATE TEMP TABLE accepted ON COMMIT DROP AS
                     SELECT barcode, order_id, line, stored AS sold_later FROM checked
                     WHERE NOT stored OR (stored_order IS NULL AND order_id IS NOT NULL);
                 ANALYZE accepted;",
            )
            .await?;
        let bulk = self
            .bulk_mode("barcodes", "accepted WHERE NOT sold_later")
            .await?;
        if bulk {
            self.begin_shadow(&BARCODES_TABLE).await?;
        }
        let client = self.client();
        // In key order, so the primary key grows at its right edge.
        client
            .execute(
                "INSERT INTO barcodes (barcode, order_id, ingestion_id, source_line)
                 SELECT barcode, order_id, $1, line FROM accepted WHERE NOT sold_later
                 ORDER BY barcode",
                &[&self.ingestion_id],
            )
            .await?;
        if bulk {
            client.batch_execute(BARCODES_TABLE.build).await?;
        }
        client
            .execute(
                "UPDATE barcodes b SET order_id = a.order_id, ingestion_id = $1, source_line = a.line
                 FROM accepted a WHERE a.sold_later AND b.barcode = a.barcode",
                &[&self.ingestion_id],
            )
            .await?;
        self.merge_barcode_aggregates(rows_read, "accepted").await
    }

    /// Direct mode for barcodes: as for orders, unflagged rows went straight
    /// into the empty shadow and the flagged ones are checked exactly once its
    /// indexes are built. Every barcode stored is counted, and each sold one
    /// kept for the export, as it goes in. The table is left for autovacuum
    /// to analyze: nothing in this transaction plans on its statistics, and
    /// analyzing a few million rows took longer than the orders' whole merge.
    pub(super) async fn load_barcodes_direct(
        &mut self,
        batches: mpsc::Receiver<Batch<BarcodeRow>>,
        export: &mut ExportSink<'_>,
    ) -> Result<LoadCounts, DbError> {
        let sort_io = DbError::export("the sorted barcodes");
        let mut sold = ExternalSorter::new(self.settings.sort_budget);
        let mut accepted = AcceptedBarcodes::default();
        let mut keep = |row: BarcodeRow| {
            accepted.inserted += 1;
            match row.order_id {
                None => accepted.inserted_unused += 1,
                Some(order_id) => sold
                    .push(SoldBarcode {
                        order_id: order_id.get(),
                        line: row.line,
                        barcode: row.barcode,
                    })
                    .map_err(sort_io)?,
            }
            Ok(())
        };
        let rows_read = self.stage_direct(batches, &mut keep).await?;
        self.client()
            .batch_execute(&format!(
                "{build}{settle}",
                build = BARCODES_TABLE.build,
                settle = ranking::BARCODES.flagged_rows(self.ingestion_id),
            ))
            .await?;
        // The flagged rows that won are stored too.
        let winners = self
            .client()
            .query_raw(
                "SELECT line, barcode, order_id FROM ranked WHERE line = first_line AND NOT copied",
                std::iter::empty::<i64>(),
            )
            .await?;
        let mut winners = pin!(winners);
        while let Some(row) = winners.try_next().await? {
            keep(BarcodeRow {
                line: row.get::<_, i64>(0) as u64,
                barcode: Barcode::from_trusted(row.get(1)),
                order_id: row.get::<_, Option<i64>>(2).map(OrderId::from_trusted),
            })?;
        }
        let sold = sold.finish().map_err(sort_io)?;
        self.merge_first_barcode_aggregates(rows_read, accepted, sold, export)
            .await
    }

    /// Tickets of the accepted barcodes whose orders are known, the
    /// unknown-order warnings, and the counts. `accepted` is the relation of
    /// accepted rows (barcode, order_id, line, sold_later). The big joins are
    /// plain queries into temporary tables, so PostgreSQL may run them in
    /// parallel (a statement that writes a shared table never is).
    async fn merge_barcode_aggregates(
        &mut self,
        rows_read: u64,
        accepted: &str,
    ) -> Result<LoadCounts, DbError> {
        let client = self.client();
        // Each accepted barcode's order is looked up once, known or not, and
        // only over the accepted order_ids' range: two hashes of every order
        // (the known ones, then the missing ones) took 1.8 s of a 100k-order
        // increment onto 1M orders, and grew with the base.
        let range = client
            .query_one(
                &format!("SELECT min(order_id), max(order_id) FROM {accepted}"),
                &[],
            )
            .await?;
        let first: i64 = range.get::<_, Option<i64>>(0).unwrap_or(0);
        let last: i64 = range.get::<_, Option<i64>>(1).unwrap_or(0);
        client
            .batch_execute(&format!(
                "CREATE TEMP TABLE accepted_orders ON COMMIT DROP AS
                     SELECT a.line, a.barcode, a.order_id, o.customer_id
                     FROM {accepted} a LEFT JOIN orders o
                          ON o.order_id = a.order_id AND o.order_id BETWEEN {first} AND {last}
                     WHERE a.order_id IS NOT NULL;
                 CREATE TEMP TABLE known ON COMMIT DROP AS
                     SELECT customer_id, count(*) AS tickets FROM accepted_orders
                     WHERE customer_id IS NOT NULL GROUP BY customer_id;
                 CREATE TEMP TABLE changed_orders ON COMMIT DROP AS
                     SELECT DISTINCT order_id FROM accepted_orders WHERE customer_id IS NOT NULL;
                 {tickets};
                 CREATE TEMP TABLE orphans ON COMMIT DROP AS
                     SELECT line, barcode, order_id FROM accepted_orders WHERE customer_id IS NULL;
                 {first_orphans}",
                tickets = aggregates::add_customer_tickets(aggregates::KNOWN_TICKETS),
                first_orphans = FIRST_ORPHANS_TO_PROBLEMS,
            ))
            .await?;
        let tickets: i64 = client
            .query_one("SELECT coalesce(sum(tickets), 0)::bigint FROM known", &[])
            .await?
            .get(0);
        let orphans: i64 = client
            .query_one("SELECT count(*) FROM orphans", &[])
            .await?
            .get(0);
        let accepted = self.accepted_counts(accepted).await?;
        self.changed_lines = super::ChangedLines::Listed;
        self.merge_barcode_counts(rows_read, accepted, tickets, orphans)
            .await
    }

    /// What the relation of accepted barcode rows adds and sells.
    async fn accepted_counts(&self, accepted: &str) -> Result<AcceptedBarcodes, DbError> {
        let row = self
            .client()
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE NOT sold_later),
                            count(*) FILTER (WHERE NOT sold_later AND order_id IS NULL),
                            count(*) FILTER (WHERE sold_later)
                     FROM {accepted} a"
                ),
                &[],
            )
            .await?;
        Ok(AcceptedBarcodes {
            inserted: row.get(0),
            inserted_unused: row.get(1),
            sold_later: row.get(2),
        })
    }

    /// Moves the deltas of a barcodes load and counts what it did.
    pub(super) async fn merge_barcode_counts(
        &mut self,
        rows_read: u64,
        accepted: AcceptedBarcodes,
        tickets: i64,
        orphans: i64,
    ) -> Result<LoadCounts, DbError> {
        self.deltas.barcodes += accepted.inserted;
        self.deltas.unused += accepted.inserted_unused - accepted.sold_later;
        self.deltas.tickets += tickets;
        self.counts(rows_read, accepted.inserted + accepted.sold_later, orphans)
            .await
    }
}
