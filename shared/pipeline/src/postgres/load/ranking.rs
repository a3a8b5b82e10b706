//! First wins, by line: the SQL that ranks a file's rows of one key (an
//! order_id, a barcode) into a temporary `ranked` table with each key's
//! first line (and what the first row said), and reports the later rows.
//! Orders and barcodes rank alike; only their columns differ.

use super::problems::{BARCODE_REPEATS_TO_PROBLEMS, ORDER_REPEATS_TO_PROBLEMS};

pub(super) struct Ranking {
    table: &'static str,
    key: &'static str,
    /// The row's columns, the key among them.
    columns: &'static str,
    /// More of the first row than its line, for the repeats' reasons.
    firsts: &'static str,
    repeats_to_problems: &'static str,
}

pub(super) const ORDERS: Ranking = Ranking {
    table: "orders",
    key: "order_id",
    columns: "order_id, customer_id",
    firsts: ", first_value(customer_id) OVER w AS first_customer",
    repeats_to_problems: ORDER_REPEATS_TO_PROBLEMS,
};

pub(super) const BARCODES: Ranking = Ranking {
    table: "barcodes",
    key: "barcode",
    columns: "barcode, order_id",
    firsts: "",
    repeats_to_problems: BARCODE_REPEATS_TO_PROBLEMS,
};

impl Ranking {
    /// A staged load: the file's valid rows among themselves (the stored
    /// rows are met later, under the merge lock).
    pub(super) fn staged_rows(&self) -> String {
        self.rank("", "staging WHERE reason IS NULL")
    }

    /// A direct load's flagged rows (those its repeat filter could not
    /// clear), ranked with the stored rows of their keys, which rank by
    /// their own line but are never reported or stored again; the winning
    /// flagged rows are stored with `ingestion_id`.
    pub(super) fn flagged_rows(&self, ingestion_id: i64) -> String {
        let Ranking {
            table,
            key,
            columns,
            ..
        } = self;
        let ranked = self.rank(
            ", copied",
            &format!(
                "(SELECT line, {columns}, false AS copied FROM staging WHERE reason IS NULL
                  UNION ALL
                  SELECT source_line, {columns}, true FROM {table}
                  WHERE {key} IN (SELECT {key} FROM staging WHERE reason IS NULL)) c"
            ),
        );
        format!(
            "{ranked}
             INSERT INTO {table} ({columns}, ingestion_id, source_line)
             SELECT {columns}, {ingestion_id}, line FROM ranked
             WHERE line = first_line AND NOT copied;"
        )
    }

    /// `ranked` from `rows` (with `more` columns of theirs), and the later
    /// rows of each key reported.
    fn rank(&self, more: &str, rows: &str) -> String {
        format!(
            "CREATE TEMP TABLE ranked ON COMMIT DROP AS
                 SELECT line, {columns}{more}, first_value(line) OVER w AS first_line{firsts}
                 FROM {rows}
                 WINDOW w AS (PARTITION BY {key} ORDER BY line);
             {repeats}",
            columns = self.columns,
            firsts = self.firsts,
            key = self.key,
            repeats = self.repeats_to_problems,
        )
    }
}
