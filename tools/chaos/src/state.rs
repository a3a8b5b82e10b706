//! What a run left behind, to compare with a clean run of the same files:
//! every order and barcode as its file made it, with its order and
//! provenance (as a multiset, so rows lost and rows doubled can be counted),
//! the aggregates, the ledger, and processed_orders.csv, which must also
//! equal a full regeneration from the database. Sales are not file rows: a
//! sale's order is left out, and a barcode a sale sold counts as the unsold
//! row its file gave (the sales case checks the sales themselves).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result};
use deadpool_postgres::Pool;
use order_pipeline::config::PROCESSED_ORDERS_KEY;
use order_pipeline::postgres::{DbError, PgStore};
use order_pipeline::processed::ProcessedOrdersWriter;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// "order 7 customer 3 from incoming/orders.csv:8" -> how many times.
    pub rows: BTreeMap<String, u64>,
    /// customer_tickets and pipeline_stats, one line each.
    pub aggregates: Vec<String>,
    /// One line per ingestion: key, status, kind and counts.
    pub ledger: Vec<String>,
    /// SHA-256 of the published processed_orders.csv (empty when missing).
    pub processed: String,
    /// SHA-256 of processed_orders.csv regenerated from the database.
    pub regenerated: String,
}

/// How a run's snapshot differs from the clean one.
#[derive(Debug, Default)]
pub struct Difference {
    pub rows_lost: u64,
    pub rows_doubled: u64,
    pub problems: Vec<String>,
}

impl Snapshot {
    pub async fn take(pool: &Pool, s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Self> {
        let client = pool.get().await?;
        let mut rows = BTreeMap::new();
        let listed = client
            .query(
                "SELECT format('order %s customer %s from %s:%s',
                               o.order_id, o.customer_id, i.key, o.source_line)
                 FROM orders o LEFT JOIN ingestions i ON i.id = o.ingestion_id
                 WHERE NOT EXISTS (SELECT 1 FROM sales s WHERE s.order_id = o.order_id)
                 UNION ALL
                 SELECT format('barcode %s order %s from %s:%s', b.barcode,
                               CASE WHEN b.sale_id IS NULL THEN b.order_id END, i.key, b.source_line)
                 FROM barcodes b LEFT JOIN ingestions i ON i.id = b.ingestion_id",
                &[],
            )
            .await?;
        for row in listed {
            *rows.entry(row.get::<_, String>(0)).or_default() += 1;
        }
        let aggregates = lines(
            &client,
            "SELECT format('customer %s tickets %s', customer_id, tickets) FROM customer_tickets
             UNION ALL
             SELECT format('orders %s barcodes %s unused %s rejected rows %s',
                           orders, barcodes, unused_barcodes, rejected_rows) FROM pipeline_stats
             ORDER BY 1",
        )
        .await?;
        let ledger = lines(
            &client,
            "SELECT format('%s %s %s read %s accepted %s rejected %s duplicates %s warnings %s',
                           key, status, kind, rows_read, accepted, rejected, duplicates, warnings)
             FROM ingestions ORDER BY 1",
        )
        .await?;
        drop(client);
        Ok(Self {
            rows,
            aggregates,
            ledger,
            processed: published_digest(s3, bucket).await?,
            regenerated: regenerated_digest(pool, bucket).await?,
        })
    }

    /// Compares a run (`self`) with the clean run: file rows and ledger
    /// always; aggregates and processed_orders.csv too unless `sales` ran
    /// (they changed those), and processed_orders.csv with a regeneration.
    pub fn difference_from(&self, clean: &Snapshot, sales: bool) -> Difference {
        let mut difference = Difference::default();
        for (row, &expected) in &clean.rows {
            let found = self.rows.get(row).copied().unwrap_or(0);
            difference.rows_lost += expected.saturating_sub(found);
        }
        for (row, &found) in &self.rows {
            let expected = clean.rows.get(row).copied().unwrap_or(0);
            difference.rows_doubled += found.saturating_sub(expected);
        }
        if difference.rows_lost + difference.rows_doubled > 0 {
            difference.problems.push(format!(
                "{} row(s) lost, {} doubled or changed, against the clean run",
                difference.rows_lost, difference.rows_doubled
            ));
        }
        let mut differ = |what: &str, ours: &[String], clean: &[String]| {
            if ours != clean {
                let first = ours.iter().zip(clean).find(|(a, b)| a != b).map_or_else(
                    || format!("{} lines against {}", ours.len(), clean.len()),
                    |(a, b)| format!("{a:?} where the clean run has {b:?}"),
                );
                difference.problems.push(format!("{what} differ: {first}"));
            }
        };
        if !sales {
            differ("aggregates", &self.aggregates, &clean.aggregates);
        }
        differ("ledgers", &self.ledger, &clean.ledger);
        if !sales && self.processed != clean.processed {
            difference
                .problems
                .push("processed_orders.csv differs from the clean run's".into());
        }
        if self.processed != self.regenerated {
            difference.problems.push(
                "processed_orders.csv differs from a full regeneration from the database".into(),
            );
        }
        difference
    }
}

/// Aggregates that disagree with the rows they count: customer_tickets
/// against the barcodes sold per customer, pipeline_stats against the
/// tables. Empty when exact.
pub async fn aggregate_drift(pool: &Pool) -> Result<Vec<String>> {
    let client = pool.get().await?;
    let mut drift = lines(
        &client,
        "WITH counted AS (
             SELECT o.customer_id, count(*) AS tickets
             FROM barcodes b JOIN orders o ON o.order_id = b.order_id GROUP BY 1),
         kept AS (SELECT customer_id, tickets FROM customer_tickets WHERE tickets > 0),
         drift AS ((SELECT * FROM kept EXCEPT SELECT * FROM counted)
                   UNION ALL (SELECT * FROM counted EXCEPT SELECT * FROM kept))
         SELECT format('customer_tickets of customer %s: kept %s, counted %s', d.customer_id,
                       (SELECT tickets FROM kept k WHERE k.customer_id = d.customer_id),
                       (SELECT tickets FROM counted c WHERE c.customer_id = d.customer_id))
         FROM (SELECT DISTINCT customer_id FROM drift) d ORDER BY 1 LIMIT 5",
    )
    .await?;
    drift.extend(
        lines(
            &client,
            "SELECT format('pipeline_stats says %s orders, %s barcodes, %s unused; \
                            the tables hold %s, %s, %s', s.orders, s.barcodes, s.unused_barcodes,
                           o.n, b.n, b.unused)
             FROM pipeline_stats s,
                  (SELECT count(*) AS n FROM orders) o,
                  (SELECT count(*) AS n, count(*) FILTER (WHERE order_id IS NULL) AS unused
                   FROM barcodes) b
             WHERE (s.orders, s.barcodes, s.unused_barcodes) <> (o.n, b.n, b.unused)",
        )
        .await?,
    );
    Ok(drift)
}

async fn lines(client: &deadpool_postgres::Object, sql: &str) -> Result<Vec<String>> {
    Ok(client
        .query(sql, &[])
        .await
        .with_context(|| sql.to_owned())?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Feeds everything written to a SHA-256.
#[derive(Default)]
struct DigestWriter(Sha256);

impl Write for DigestWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

async fn published_digest(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<String> {
    let object = match s3
        .get_object()
        .bucket(bucket)
        .key(PROCESSED_ORDERS_KEY)
        .send()
        .await
    {
        Ok(object) => object,
        Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
            return Ok(String::new())
        }
        Err(error) => return Err(pipeline_local::sdk_error(error)),
    };
    let mut body = object.body;
    let mut digest = Sha256::new();
    while let Some(chunk) = body.try_next().await? {
        digest.update(&chunk);
    }
    Ok(hex(&digest.finalize()))
}

/// Regenerates processed_orders.csv from the database, as the ingest's
/// publish does, into a digest (then rolls back: nothing is recorded).
async fn regenerated_digest(pool: &Pool, bucket: &str) -> Result<String> {
    let publish = PgStore::new(pool.clone()).begin_publish(bucket).await?;
    let mut writer = ProcessedOrdersWriter::new(DigestWriter::default())?;
    publish
        .for_each_processed_order(|order| {
            writer
                .write(&order)
                .map_err(|e| RegenerateError::Write(e.to_string()))
        })
        .await?;
    drop(publish);
    Ok(hex(&writer.finish()?.0.finalize()))
}

#[derive(Debug, thiserror::Error)]
enum RegenerateError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("writing the regenerated processed_orders.csv: {0}")]
    Write(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(rows: &[(&str, u64)], aggregates: &[&str]) -> Snapshot {
        Snapshot {
            rows: rows.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            aggregates: aggregates.iter().map(|a| a.to_string()).collect(),
            ledger: vec!["incoming/orders.csv loaded orders".into()],
            processed: "abc".into(),
            regenerated: "abc".into(),
        }
    }

    #[test]
    fn counts_rows_lost_and_doubled_against_the_clean_run() {
        let clean = snapshot(
            &[("order 1", 1), ("order 2", 1), ("barcode a", 1)],
            &["t 3"],
        );
        let run = snapshot(
            &[("order 1", 2), ("barcode a", 1), ("barcode b", 1)],
            &["t 3"],
        );
        let difference = run.difference_from(&clean, false);
        assert_eq!((difference.rows_lost, difference.rows_doubled), (1, 2));
        assert_eq!(difference.problems.len(), 1, "{:?}", difference.problems);
        assert!(clean.difference_from(&clean, false).problems.is_empty());
    }

    #[test]
    fn aggregates_and_processed_orders_must_match_unless_sales_changed_them() {
        let clean = snapshot(&[("order 1", 1)], &["t 3"]);
        let mut run = snapshot(&[("order 1", 1)], &["t 4"]);
        run.processed = "def".into();
        let problems = run.difference_from(&clean, false).problems;
        assert_eq!(
            problems.len(),
            3,
            "aggregates, clean file, regeneration: {problems:?}"
        );
        let problems = run.difference_from(&clean, true).problems;
        assert_eq!(problems.len(), 1, "still the regeneration: {problems:?}");
        assert!(problems[0].contains("regeneration"), "{problems:?}");
    }
}
