//! The tables a load may write as a shadow (a first load, bulk mode), and
//! starting one; the commit swaps it in.

use super::LoadSession;
use crate::postgres::DbError;

/// A big table that bulk loads (a first load into it, a load that at least
/// doubles it) write as a shadow copy without indexes, build the indexes on
/// it once (one sort beats maintaining a B-tree row by row), and swap in
/// just before the commit: API readers keep reading the committed table
/// meanwhile instead of waiting on the load. DDL needs the table's owner,
/// which the ingest role is not: the owner's functions of
/// migrations/V6__shadow_loads.sql run it, and only it.
pub(super) struct LoadTable {
    pub table: &'static str,
    /// Creates the shadow (a copy of the table's rows, no indexes) and puts
    /// its schema first in the load's search_path, so the load's SQL needs
    /// no change.
    pub shadow: &'static str,
    pub build: &'static str,
    pub swap: &'static str,
}

pub(super) const ORDERS_TABLE: LoadTable = LoadTable {
    table: "orders",
    shadow: "SELECT begin_shadow_load('orders'); SET LOCAL search_path = pipeline_load, public;",
    build: "SELECT build_load_indexes('orders');",
    swap: "SELECT swap_in_shadow_load('orders');",
};

pub(super) const BARCODES_TABLE: LoadTable = LoadTable {
    table: "barcodes",
    shadow: "SELECT begin_shadow_load('barcodes'); SET LOCAL search_path = pipeline_load, public;",
    build: "SELECT build_load_indexes('barcodes');",
    swap: "SELECT swap_in_shadow_load('barcodes');",
};

impl LoadSession {
    /// From here on the load writes `load_table`'s shadow, which
    /// [`LoadSession::commit`] swaps in. Under the merge lock, so nobody
    /// writes the live table before the swap.
    pub(super) async fn begin_shadow(
        &mut self,
        load_table: &'static LoadTable,
    ) -> Result<(), DbError> {
        self.client().batch_execute(load_table.shadow).await?;
        self.shadowed = Some(load_table);
        Ok(())
    }
}
