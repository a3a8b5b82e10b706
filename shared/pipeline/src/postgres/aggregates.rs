//! The maintained aggregates: `pipeline_stats` (totals and versions) and
//! `customer_tickets` (tickets per customer), which the API reads instead of
//! scanning the barcode table. This is their one writer: a load's merge and
//! commit and a sale both move them through here, so the two never disagree
//! on what a change moves.

use deadpool_postgres::Object;

use super::load::Committed;
use super::DbError;

/// What a change moves in `pipeline_stats`.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Deltas {
    pub orders: i64,
    pub barcodes: i64,
    pub unused: i64,
    /// Tickets that moved: processed_orders.csv changes only then.
    pub tickets: i64,
}

impl Deltas {
    /// A sale: one new order, `tickets` unused barcodes sold to it.
    pub fn of_sale(tickets: i64) -> Self {
        Self {
            orders: 1,
            barcodes: 0,
            unused: -tickets,
            tickets,
        }
    }
}

/// The statement that adds the (customer_id, tickets) rows of `source` (a
/// query, or `VALUES` with parameters) to the customers' totals.
pub(super) fn add_customer_tickets(source: &str) -> String {
    format!(
        "INSERT INTO customer_tickets (customer_id, tickets) {source}
         ON CONFLICT (customer_id) DO UPDATE
             SET tickets = customer_tickets.tickets + EXCLUDED.tickets"
    )
}

/// The tickets per customer of a temporary `known` table of (customer_id,
/// tickets), to add to the customers' totals.
pub(super) const KNOWN_TICKETS: &str = "SELECT customer_id, tickets FROM known";

/// Adding many customers' tickets with one COPY of (customer_id, tickets)
/// rows. Under the merge lock nobody else adds tickets: an empty
/// customer_tickets (the usual first load) takes the rows as they are;
/// otherwise they go to a temporary `known` table, added when the COPY is
/// done.
pub(super) struct TicketsCopy {
    into_empty: bool,
}

impl TicketsCopy {
    pub async fn begin(client: &Object) -> Result<Self, DbError> {
        let into_empty: bool = client
            .query_one("SELECT NOT EXISTS (SELECT 1 FROM customer_tickets)", &[])
            .await?
            .get(0);
        if !into_empty {
            client
                .batch_execute(
                    "CREATE TEMP TABLE known (customer_id bigint, tickets bigint) ON COMMIT DROP",
                )
                .await?;
        }
        Ok(Self { into_empty })
    }

    /// The COPY to send the rows with.
    pub fn statement(&self) -> &'static str {
        if self.into_empty {
            "COPY customer_tickets (customer_id, tickets) FROM STDIN BINARY"
        } else {
            "COPY known (customer_id, tickets) FROM STDIN BINARY"
        }
    }

    /// Once the COPY is finished: adds what went to `known`.
    pub async fn finish(self, client: &Object) -> Result<(), DbError> {
        if !self.into_empty {
            client
                .batch_execute(&add_customer_tickets(KNOWN_TICKETS))
                .await?;
        }
        Ok(())
    }
}

/// Moves the totals by `deltas`, counts `rejected` rows, and bumps the data
/// version when something `changed` and the output version when tickets
/// moved. Returns the new versions.
pub(super) async fn apply(
    client: &Object,
    deltas: Deltas,
    rejected: i64,
    changed: bool,
) -> Result<Committed, DbError> {
    let row = client
        .query_one(
            "UPDATE pipeline_stats SET
                 orders = orders + $1, barcodes = barcodes + $2,
                 unused_barcodes = unused_barcodes + $3,
                 rejected_rows = rejected_rows + $4,
                 data_version = data_version + CASE WHEN $5 THEN 1 ELSE 0 END,
                 output_version = output_version + CASE WHEN $6 THEN 1 ELSE 0 END
             RETURNING data_version, output_version",
            &[
                &deltas.orders,
                &deltas.barcodes,
                &deltas.unused,
                &rejected,
                &changed,
                &(deltas.tickets > 0),
            ],
        )
        .await?;
    Ok(Committed {
        data_version: row.get(0),
        output_version: row.get(1),
    })
}

/// Below this many changed orders, a commit lists them even when they are
/// most of the orders.
const WHOLE_FILE_MIN_CHANGES: i64 = 10_000;

/// Records which lines of processed_orders.csv the commit of
/// `output_version` changed, so a publisher rewrites only the segments they
/// fall in: the orders `changed` (a query of order ids) selects, or with
/// `None` the whole file. When most orders changed (and more than
/// [`WHOLE_FILE_MIN_CHANGES`]), the whole file is recorded instead: one full
/// regeneration beats rewriting most segments one by one, and a million
/// rows here. Called after [`apply`], under the merge lock (or the stats row's
/// lock, for a sale): the versions are in commit order.
pub(super) async fn record_changed_lines(
    client: &Object,
    output_version: i64,
    changed: Option<&str>,
) -> Result<(), DbError> {
    match changed {
        None => {
            client
                .execute(
                    "INSERT INTO export_changes (output_version, order_id) VALUES ($1, NULL)",
                    &[&output_version],
                )
                .await?
        }
        Some(changed) => {
            let statement = format!(
                "WITH changed AS MATERIALIZED (SELECT order_id FROM ({changed}) c),
                      most AS (SELECT count(*) > $2 AND count(*) * 2 > (SELECT orders FROM pipeline_stats) AS whole
                               FROM changed)
                 INSERT INTO export_changes (output_version, order_id)
                 SELECT $1::bigint, order_id FROM changed WHERE NOT (SELECT whole FROM most)
                 UNION ALL SELECT $1::bigint, NULL WHERE (SELECT whole FROM most)"
            );
            client
                .execute(&statement, &[&output_version, &WHOLE_FILE_MIN_CHANGES])
                .await?
        }
    };
    Ok(())
}
