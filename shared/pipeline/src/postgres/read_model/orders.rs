//! Orders: listings by order_id and one order with its barcodes and where
//! each came from.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use crate::domain::{Barcode, CustomerId, OrderId};
use crate::postgres::{DbError, PgStore};

/// Where a row came from: a line of an ingested file, and/or a sale.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderSummary {
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub order_id: OrderId,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub customer_id: CustomerId,
    /// Barcodes (tickets) the order holds.
    pub tickets: i64,
    /// When the order was stored (RFC 3339, UTC).
    pub created_at: String,
}

/// A barcode of an order, with its provenance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderBarcode {
    #[serde(deserialize_with = "stored::barcode")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub barcode: Barcode,
    pub source: Provenance,
}

/// One order with its barcodes.
// Serialised, it is also a sale's stored answer (see `postgres::sales`),
// read back on a retry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderDetail {
    #[serde(deserialize_with = "stored::order_id")]
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub order_id: OrderId,
    #[serde(deserialize_with = "stored::customer_id")]
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub customer_id: CustomerId,
    pub tickets: i64,
    pub created_at: String,
    pub source: Provenance,
    /// In arrival order (file, then line; sold barcodes by code).
    pub barcodes: Vec<OrderBarcode>,
}

/// Reading back a sale's stored answer: its values came from the database,
/// as `from_trusted` requires. (The domain types deserialise nowhere else,
/// so no request body can make one unchecked.)
mod stored {
    use serde::{Deserialize, Deserializer};

    use crate::domain::{Barcode, CustomerId, OrderId};

    pub fn order_id<'de, D: Deserializer<'de>>(value: D) -> Result<OrderId, D::Error> {
        i64::deserialize(value).map(OrderId::from_trusted)
    }

    pub fn customer_id<'de, D: Deserializer<'de>>(value: D) -> Result<CustomerId, D::Error> {
        i64::deserialize(value).map(CustomerId::from_trusted)
    }

    pub fn barcode<'de, D: Deserializer<'de>>(value: D) -> Result<Barcode, D::Error> {
        String::deserialize(value).map(Barcode::from_trusted)
    }
}

const ORDER_SUMMARY_COLUMNS: &str = concat!(
    "o.order_id, o.customer_id, (SELECT count(*) FROM barcodes b WHERE b.order_id = o.order_id), ",
    ts!("o.created_at")
);

fn order_summary(row: &Row) -> OrderSummary {
    OrderSummary {
        order_id: OrderId::from_trusted(row.get(0)),
        customer_id: CustomerId::from_trusted(row.get(1)),
        tickets: row.get(2),
        created_at: row.get(3),
    }
}

impl PgStore {
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
}

/// One order with its barcodes, on `client` (a sale reads its own order
/// inside its transaction).
pub(in crate::postgres) async fn order_detail<C: GenericClient>(
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
            barcode: Barcode::from_trusted(row.get(0)),
            source: Provenance {
                ingestion_id: row.get(1),
                file: row.get(2),
                line: row.get(3),
                sale_id: row.get(4),
            },
        })
        .collect();
    Ok(Some(OrderDetail {
        order_id: OrderId::from_trusted(order.get(0)),
        customer_id: CustomerId::from_trusted(order.get(1)),
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
