//! How each row kind is encoded for the load: typed columns for the
//! staging table (with the reject columns), and the table's own columns for
//! a direct COPY.

use std::pin::Pin;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use crate::csv_input::RejectedRow;
use crate::domain::{BarcodeRow, OrderId, OrderRow};
use crate::postgres::copy_buffer::CopyBuffer;
use crate::seen::SeenFilter;

/// A NULL for a column of any type: a rejected row has no typed values, and
/// a valid row has no reject details.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Writes one line, valid or rejected, to the staging COPY.
pub(super) async fn write_staged<R: StagedRow>(
    row: &Result<R, RejectedRow>,
    writer: Pin<&mut BinaryCopyInWriter>,
) -> Result<(), tokio_postgres::Error> {
    match row {
        Ok(row) => row.write(writer).await,
        Err(rejected) => R::write_rejected(rejected, writer).await,
    }
}

/// A row kind that can be bulk-loaded through the staging table.
pub(super) trait StagedRow: Send + 'static {
    /// Typed columns of the staging table (the reject columns are added).
    const STAGING_COLUMNS: &'static str;
    const COPY_COLUMNS: &'static str;
    const COLUMN_TYPES: &'static [Type];

    fn staging_copy() -> String {
        format!(
            "COPY staging ({}, field, value, reason, raw) FROM STDIN BINARY",
            Self::COPY_COLUMNS
        )
    }

    fn staging_types() -> Vec<Type> {
        let mut types = Self::COLUMN_TYPES.to_vec();
        types.extend([Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT]);
        types
    }

    /// A valid line: its typed columns, NULL reject columns.
    async fn write(
        &self,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> Result<(), tokio_postgres::Error>;

    /// A rejected line: its number, NULL typed columns, and why.
    async fn write_rejected(
        rejected: &RejectedRow,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> Result<(), tokio_postgres::Error> {
        let line = rejected.line as i64;
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![&line];
        values.extend(std::iter::repeat_n(
            &Null as &(dyn ToSql + Sync),
            Self::COLUMN_TYPES.len() - 1,
        ));
        values.extend([
            &rejected.field as &(dyn ToSql + Sync),
            &rejected.value,
            &rejected.reason,
            &rejected.raw,
        ]);
        writer.write(&values).await
    }
}

/// A row kind that can also be copied straight into its final table.
pub(super) trait DirectRow: StagedRow {
    const DIRECT_COPY: &'static str;

    /// Appends the row, in the columns of `DIRECT_COPY`.
    fn encode_direct(&self, ingestion_id: i64, copy: &mut CopyBuffer);

    /// The [`SeenFilter::hash`] of the row's key.
    fn key_hash(&self) -> u64;
}

impl StagedRow for OrderRow {
    const STAGING_COLUMNS: &'static str = "line bigint, order_id bigint, customer_id bigint";
    const COPY_COLUMNS: &'static str = "line, order_id, customer_id";
    const COLUMN_TYPES: &'static [Type] = &[Type::INT8, Type::INT8, Type::INT8];

    async fn write(
        &self,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> Result<(), tokio_postgres::Error> {
        let line = self.line as i64;
        // The reject columns (field, value, reason, raw) are NULL.
        writer
            .write(&[
                &line,
                &self.order_id.get(),
                &self.customer_id.get(),
                &Null,
                &Null,
                &Null,
                &Null,
            ])
            .await
    }
}

impl DirectRow for OrderRow {
    const DIRECT_COPY: &'static str =
        "COPY orders (order_id, customer_id, ingestion_id, source_line) FROM STDIN BINARY";

    fn encode_direct(&self, ingestion_id: i64, copy: &mut CopyBuffer) {
        copy.row(4)
            .int8(self.order_id.get())
            .int8(self.customer_id.get())
            .int8(ingestion_id)
            .int8(self.line as i64);
    }

    fn key_hash(&self) -> u64 {
        SeenFilter::hash(&self.order_id.get())
    }
}

impl StagedRow for BarcodeRow {
    const STAGING_COLUMNS: &'static str =
        "line bigint, barcode text COLLATE \"C\", order_id bigint";
    const COPY_COLUMNS: &'static str = "line, barcode, order_id";
    const COLUMN_TYPES: &'static [Type] = &[Type::INT8, Type::TEXT, Type::INT8];

    async fn write(
        &self,
        writer: Pin<&mut BinaryCopyInWriter>,
    ) -> Result<(), tokio_postgres::Error> {
        let line = self.line as i64;
        let order_id = self.order_id.map(OrderId::get);
        writer
            .write(&[
                &line,
                &self.barcode.as_str(),
                &order_id,
                &Null,
                &Null,
                &Null,
                &Null,
            ])
            .await
    }
}

impl DirectRow for BarcodeRow {
    const DIRECT_COPY: &'static str =
        "COPY barcodes (barcode, order_id, ingestion_id, source_line) FROM STDIN BINARY";

    fn encode_direct(&self, ingestion_id: i64, copy: &mut CopyBuffer) {
        copy.row(4)
            .text(self.barcode.as_str())
            .int8_or_null(self.order_id.map(OrderId::get))
            .int8(ingestion_id)
            .int8(self.line as i64);
    }

    fn key_hash(&self) -> u64 {
        SeenFilter::hash(self.barcode.as_str())
    }
}
