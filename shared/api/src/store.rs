//! The API's answers as JSON with OpenAPI schemas: one DTO per read-model
//! struct of `order_pipeline::postgres::read_model`, mapped from it field
//! for field (ids as plain integers, barcodes as text). The queries are the
//! read model's; nothing here writes SQL.

use order_pipeline::postgres::read_model::{analytics, customers, ingestions, orders};

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

impl From<orders::Provenance> for Provenance {
    fn from(source: orders::Provenance) -> Self {
        Self {
            ingestion_id: source.ingestion_id,
            file: source.file,
            line: source.line,
            sale_id: source.sale_id,
        }
    }
}

impl From<orders::OrderSummary> for OrderSummary {
    fn from(order: orders::OrderSummary) -> Self {
        Self {
            order_id: order.order_id.get(),
            customer_id: order.customer_id.get(),
            tickets: order.tickets,
            created_at: order.created_at,
        }
    }
}

impl From<orders::OrderBarcode> for OrderBarcode {
    fn from(barcode: orders::OrderBarcode) -> Self {
        Self {
            barcode: barcode.barcode.as_str().to_owned(),
            source: barcode.source.into(),
        }
    }
}

impl From<orders::OrderDetail> for OrderDetail {
    fn from(order: orders::OrderDetail) -> Self {
        Self {
            order_id: order.order_id.get(),
            customer_id: order.customer_id.get(),
            tickets: order.tickets,
            created_at: order.created_at,
            source: order.source.into(),
            barcodes: order.barcodes.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<customers::CustomerSummary> for CustomerSummary {
    fn from(customer: customers::CustomerSummary) -> Self {
        Self {
            customer_id: customer.customer_id.get(),
            orders: customer.orders,
            tickets: customer.tickets,
        }
    }
}

impl From<ingestions::IngestionRow> for IngestionRow {
    fn from(row: ingestions::IngestionRow) -> Self {
        Self {
            id: row.id,
            bucket: row.bucket,
            key: row.key,
            status: row.status.to_string(),
            kind: row.kind,
            rows_read: row.rows_read,
            accepted: row.accepted,
            rejected: row.rejected,
            duplicates: row.duplicates,
            warnings: row.warnings,
            attempts: row.attempts,
            error: row.error,
            started_at: row.started_at,
            finished_at: row.finished_at,
            duration_ms: row.duration_ms,
            report_key: row.report_key,
            rejects_key: row.rejects_key,
        }
    }
}

impl From<analytics::LastIngestion> for LastIngestion {
    fn from(last: analytics::LastIngestion) -> Self {
        Self {
            id: last.id,
            key: last.key,
            status: last.status.to_string(),
            finished_at: last.finished_at,
        }
    }
}

impl From<analytics::Summary> for Summary {
    fn from(summary: analytics::Summary) -> Self {
        Self {
            orders: summary.orders,
            customers: summary.customers,
            tickets: summary.tickets,
            barcodes: summary.barcodes,
            unused_barcodes: summary.unused_barcodes,
            rejected_rows: summary.rejected_rows,
            data_version: summary.data_version,
            last_ingestion: summary.last_ingestion.map(Into::into),
        }
    }
}
