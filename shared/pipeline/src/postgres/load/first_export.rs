//! A first barcodes load (into an empty table) writes processed_orders.csv
//! itself, from inside its transaction: the barcodes it stored, sorted by
//! order on local disk, merged with the orders in order_id order, give the
//! file and the tickets per customer without a second pass over the tables.

use std::pin::pin;

use futures_util::{SinkExt, TryStreamExt};
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::types::Type;

use super::barcodes::AcceptedBarcodes;
use super::problems::orphans_to_problems;
use super::{LoadCounts, LoadSession};
use crate::domain::{CustomerId, OrderId, ProcessedOrder};
use crate::postgres::aggregates::TicketsCopy;
use crate::postgres::copy_buffer::CopyBuffer;
use crate::postgres::export::ExportSink;
use crate::postgres::external_sort::{self, ExternalSorter};
use crate::postgres::sold_barcodes::{BarcodesByOrder, SoldBarcode};
use crate::postgres::DbError;

/// Memory for the sold barcodes a first load sorts by order before it
/// spills a run to a temporary file (about a quarter of a million barcodes).
pub(super) const SOLD_SORT_BUDGET: usize = 16 << 20;
/// Memory for the (customer, tickets) pairs sorted by customer.
const TOTALS_SORT_BUDGET: usize = 4 << 20;
/// Customers whose tickets a first load sums in memory before it hands the
/// sums to the sorter (about 4 MB): a million orders' customers fit.
const TOTALS_HELD: usize = 128 * 1024;

/// The accepted rows of a first barcodes load: the whole table.
const FIRST_LOAD_ACCEPTED: &str =
    "(SELECT barcode, order_id, source_line AS line, false AS sold_later FROM barcodes)";

impl LoadSession {
    /// The aggregates and the export of a first load, from the barcodes it
    /// stored: `sold`, sorted by order, merged with the orders in order_id
    /// order, gives processed_orders.csv (streamed to `export`) and the
    /// tickets per customer; with no barcodes before this file, every ticket
    /// of a known order is new. The sold barcodes of no known order are the
    /// orphans.
    pub(super) async fn merge_first_barcode_aggregates(
        &mut self,
        rows_read: u64,
        accepted: AcceptedBarcodes,
        sold: external_sort::Sorted<SoldBarcode>,
        export: &mut ExportSink<'_>,
    ) -> Result<LoadCounts, DbError> {
        let exported_io = DbError::export("processed_orders.csv");
        let sort_io = DbError::export("the sorted barcodes");
        let totals_io = DbError::export("the tickets per customer");
        let client = self.client();
        let mut by_order = BarcodesByOrder::new(sold).map_err(sort_io)?;
        let mut totals = ExternalSorter::new(TOTALS_SORT_BUDGET);
        let mut held_totals = std::collections::HashMap::with_capacity(TOTALS_HELD);
        let (mut orders, mut exported_barcodes) = (0u64, 0i64);
        let known_orders = client
            .copy_out("COPY (SELECT order_id, customer_id FROM orders ORDER BY order_id) TO STDOUT BINARY")
            .await?;
        let known_orders = BinaryCopyOutStream::new(known_orders, &[Type::INT8, Type::INT8]);
        let mut known_orders = pin!(known_orders);
        while let Some(order) = known_orders.try_next().await? {
            let (order_id, customer_id): (i64, i64) = (order.try_get(0)?, order.try_get(1)?);
            let barcodes = by_order.of(order_id).map_err(sort_io)?;
            if barcodes.is_empty() {
                continue;
            }
            let tickets = barcodes.len() as i64;
            *held_totals.entry(customer_id).or_insert(0) += tickets;
            if held_totals.len() >= TOTALS_HELD {
                for pair in held_totals.drain() {
                    totals.push(pair).map_err(totals_io)?;
                }
            }
            export(ProcessedOrder {
                customer_id: CustomerId::from_trusted(customer_id),
                order_id: OrderId::from_trusted(order_id),
                barcodes,
            })
            .map_err(exported_io)?;
            orders += 1;
            exported_barcodes += tickets;
        }
        let orphans = by_order.orphans().map_err(sort_io)?;
        for pair in held_totals.drain() {
            totals.push(pair).map_err(totals_io)?;
        }
        let tickets_copy = TicketsCopy::begin(client).await?;
        let sink = client
            .copy_in::<_, bytes::Bytes>(tickets_copy.statement())
            .await?;
        let mut sink = pin!(sink);
        let mut copy = CopyBuffer::new();
        // The pairs come sorted by customer: a customer's sums (more than
        // one when the held sums were handed over) are added up.
        let mut current: Option<(i64, i64)> = None;
        for pair in totals.finish().map_err(totals_io)? {
            let (customer_id, tickets) = pair.map_err(totals_io)?;
            match current.as_mut() {
                Some((current_id, total)) if *current_id == customer_id => *total += tickets,
                _ => {
                    if let Some((done_id, done_total)) = current.replace((customer_id, tickets)) {
                        copy.row(2).int8(done_id).int8(done_total);
                        if let Some(full) = copy.take_if_full() {
                            sink.send(full).await?;
                        }
                    }
                }
            }
        }
        if let Some((done_id, done_total)) = current {
            copy.row(2).int8(done_id).int8(done_total);
        }
        sink.send(copy.finish()).await?;
        sink.as_mut().finish().await?;
        tickets_copy.finish(client).await?;
        if orphans > 0 {
            client
                .batch_execute(&orphans_to_problems(FIRST_LOAD_ACCEPTED))
                .await?;
        }
        self.exported = Some(orders);
        self.changed_lines = super::ChangedLines::WholeFile;
        self.merge_barcode_counts(rows_read, accepted, exported_barcodes, orphans)
            .await
    }
}
