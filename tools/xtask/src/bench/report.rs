//! The bench's result table, as scripts/bench.sh printed it (its columns,
//! widths and rounding), so the README's figures stay comparable.

use std::fmt::Write;

use super::floor::Floor;

/// One row: a run of the real ingest path and its floor.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    pub rows: u64,
    pub ingest_secs: f64,
    /// The part of the ingest spent publishing processed_orders.csv.
    pub publish_secs: f64,
    pub floor: Floor,
    /// The floor copied into tables with their keys (the increment): its
    /// cell shows the copy alone.
    pub floor_copy_only: bool,
    pub peak_rss_mb: f64,
}

/// What the table's header says about the machine and the run.
pub struct Context {
    pub cores: usize,
    pub postgres_version: String,
    pub utc_minute: String,
    /// Where the reports and this table are kept.
    pub reports: String,
    pub table_path: String,
}

/// Seconds as the table shows them.
fn secs(seconds: f64) -> String {
    format!("{seconds:.2}")
}

/// `a / b` to two decimals, `-` without a floor to divide by.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

/// Rows per second, `-` for a run that took no time.
pub fn rate(rows: u64, seconds: f64) -> String {
    if seconds > 0.0 {
        format!("{:.0}", rows as f64 / seconds)
    } else {
        "-".into()
    }
}

/// Rounds to the hundredths the table shows, so that ratios are computed
/// from the figures printed (as bench.sh's awk did).
fn shown(seconds: f64) -> f64 {
    (seconds * 100.0).round() / 100.0
}

fn line(out: &mut String, cells: [&str; 9]) {
    let [run, rows, ingest, publish, floor, ratio, load_ratio, rate, rss] = cells;
    let _ = writeln!(
        out,
        "{run:<22} {rows:>10} {ingest:>10} {publish:>10} {floor:>18} {ratio:>8} {load_ratio:>10} {rate:>10} {rss:>12}"
    );
}

fn row_line(out: &mut String, row: &Row) {
    let (ingest, publish, floor) = (
        shown(row.ingest_secs),
        shown(row.publish_secs),
        shown(row.floor.total()),
    );
    let floor_cell = if row.floor_copy_only {
        format!("{} (copy)", secs(floor))
    } else {
        format!(
            "{} ({}+{})",
            secs(floor),
            secs(row.floor.copy),
            secs(row.floor.keys)
        )
    };
    line(
        out,
        [
            &row.label,
            &row.rows.to_string(),
            &secs(ingest),
            &secs(publish),
            &floor_cell,
            &ratio(ingest, floor),
            &ratio(shown(ingest - publish), floor),
            &rate(row.rows, ingest),
            &format!("{:.1}", row.peak_rss_mb),
        ],
    );
}

/// The whole report: what was measured, the table, what the floor is.
pub fn render(context: &Context, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "\nIngest benchmark: {} cores, PostgreSQL {} (fsync=off), LocalStack S3, {}\n\
         rows = orders.csv + barcodes.csv data rows; ingest = wall time of\n  \
         pipeline-local ingest incoming/orders.csv incoming/barcodes.csv (S3 GET, parse, COPY + merge, processed_orders.csv PUT)\n\
         publish = the part of ingest after the commits spent publishing processed_orders.csv (timings.publish_ms);\n  \
         a first barcodes load writes the file inside its load, so there it is the upload alone\n\
         floor = COPY of both files into bare tables of the same column types + keys built afterwards (copy + keys seconds)\n\
         ratio = ingest / floor; load ratio = (ingest - publish) / floor, the load alone against the same floor\n\n",
        context.cores, context.postgres_version, context.utc_minute
    );
    line(
        &mut out,
        [
            "run",
            "rows",
            "ingest s",
            "publish s",
            "floor s (c+k)",
            "ratio",
            "load ratio",
            "rows/s",
            "peak RSS MB",
        ],
    );
    for row in rows {
        row_line(&mut out, row);
    }
    let _ = write!(
        out,
        "\nFloor keys: orders PRIMARY KEY (order_id), index orders (customer_id, order_id), index barcodes (order_id),\n  \
         and a plain, NOT unique, index on barcodes (barcode): the files hold deliberate duplicate barcodes,\n  \
         so a unique index cannot be built (the real path rejects those rows instead).\n\
         A +N onto B row (new orders and their barcodes onto base B) copies into the already indexed floor tables of B;\n  \
         a +late N onto B row (N stored unsold barcodes sold to B's latest orders) copies into staging, then one UPDATE.\n\
         Peak RSS: the ingest process's, from wait4(2).\n\
         Reports: {}; this table: {}\n",
        context.reports, context.table_path
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str, floor_copy_only: bool) -> Row {
        Row {
            label: label.into(),
            rows: 4_330_000,
            ingest_secs: 12.346,
            publish_secs: 1.5,
            floor: Floor {
                copy: 4.0,
                keys: 2.004,
            },
            floor_copy_only,
            peak_rss_mb: 81.25,
        }
    }

    #[test]
    fn ratios_are_two_decimals_and_a_dash_without_a_floor() {
        assert_eq!(ratio(12.35, 6.0), "2.06");
        assert_eq!(ratio(1.0, 0.0), "-");
        assert_eq!(rate(1000, 0.5), "2000");
        assert_eq!(rate(1000, 0.0), "-");
    }

    #[test]
    fn a_row_keeps_bench_sh_columns_and_rounding() {
        let mut out = String::new();
        row_line(&mut out, &row("orders 1000000", false));
        assert_eq!(
            out,
            "orders 1000000            4330000      12.35       1.50   6.00 (4.00+2.00)     2.06       1.81     350607         81.2\n"
        );
    }

    #[test]
    fn the_increment_shows_its_copy_alone() {
        let mut out = String::new();
        row_line(&mut out, &row("+increment 100000", true));
        assert!(out.contains("  6.00 (copy) "), "{out}");
    }

    #[test]
    fn the_report_has_the_header_and_one_line_per_run() {
        let context = Context {
            cores: 2,
            postgres_version: "15.14".into(),
            utc_minute: "2026-12-01T16:30Z".into(),
            reports: ".local/bench/*.ingest.{json,stderr}".into(),
            table_path: ".local/bench/results-x.txt".into(),
        };
        let report = render(
            &context,
            &[row("orders 100", false), row("+increment 10", true)],
        );
        assert!(report.starts_with(
            "\nIngest benchmark: 2 cores, PostgreSQL 15.14 (fsync=off), LocalStack S3, 2026-12-01T16:30Z\n"
        ));
        let header = report
            .lines()
            .find(|line| line.starts_with("run "))
            .unwrap();
        assert_eq!(
            header,
            "run                          rows   ingest s  publish s      floor s (c+k)    ratio load ratio     rows/s  peak RSS MB"
        );
        assert_eq!(
            report
                .lines()
                .filter(|l| l.starts_with("orders 100 "))
                .count(),
            1
        );
        assert!(report.ends_with("this table: .local/bench/results-x.txt\n"));
    }
}
