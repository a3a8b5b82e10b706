//! Selling tickets through the API: a new order of unused barcodes, all or
//! nothing, exactly once per Idempotency-Key.

use deadpool_postgres::GenericClient;
use sha2::{Digest, Sha256};

use super::aggregates::{self, Deltas};
use super::read_model::orders::{order_detail, OrderDetail};
use super::transaction::Transaction;
use super::{locks, DbError, PgStore};

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

/// The fingerprint of a sale request, to tell a retry from a new request
/// reusing an Idempotency-Key.
fn sale_fingerprint(customer_id: i64, tickets: i64) -> String {
    let digest = Sha256::digest(format!("sale:v1:{customer_id}:{tickets}"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl PgStore {
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
        // transaction (see `postgres::transaction`).
        let guard = Transaction::begin(&self.pool, "BEGIN").await?;
        let tx = guard.client();
        locks::take_merge_lock_shared(tx).await?;
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
        // The same aggregates a load's commit moves, by the same writer.
        tx.execute(
            &aggregates::add_customer_tickets("VALUES ($1, $2)"),
            &[&customer_id, &tickets],
        )
        .await?;
        let committed = aggregates::apply(tx, Deltas::of_sale(tickets), 0, true).await?;
        aggregates::record_changed_lines(
            tx,
            committed.output_version,
            Some(&format!("SELECT {order_id}::bigint AS order_id")),
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
