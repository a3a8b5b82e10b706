//! wrk: its command lines, the Lua script for random ids, and the figures
//! read back from its output into the result table's rows.

use std::fmt::Write;

/// What one endpoint measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    pub p50: String,
    pub p99: String,
    pub requests_per_sec: String,
    pub non_2xx: String,
}

/// Reads the latency distribution (`--latency`), the request rate and the
/// non-2xx count from wrk's output; a missing figure is empty (none is 0).
pub fn parse(output: &str) -> Figures {
    let mut figures = Figures {
        p50: String::new(),
        p99: String::new(),
        requests_per_sec: String::new(),
        non_2xx: "0".into(),
    };
    for line in output.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["50%", value, ..] => figures.p50 = (*value).to_owned(),
            ["99%", value, ..] => figures.p99 = (*value).to_owned(),
            ["Requests/sec:", value, ..] => {
                figures.requests_per_sec = value
                    .parse::<f64>()
                    .map_or_else(|_| (*value).to_owned(), |rate| format!("{rate:.0}"))
            }
            [.., last] if line.contains("Non-2xx") => figures.non_2xx = (*last).to_owned(),
            _ => {}
        }
    }
    figures
}

/// A result table row: `%-44s %9s %9s %10s %8s`, as bench-api.sh printed it.
pub fn row(label: &str, figures: &Figures) -> String {
    format!(
        "{label:<44} {:>9} {:>9} {:>10} {:>8}",
        figures.p50, figures.p99, figures.requests_per_sec, figures.non_2xx
    )
}

/// The table's header row.
pub fn header() -> String {
    format!(
        "{:<44} {:>9} {:>9} {:>10} {:>8}",
        "endpoint", "p50", "p99", "req/s", "non-2xx"
    )
}

/// A wrk script asking for `template` with `{}` replaced by a random id in
/// 1..=max on every request, with the bearer token.
pub fn random_path_script(template: &str, max: u64, token: &str) -> String {
    let (prefix, suffix) = template.split_once("{}").unwrap_or((template, ""));
    let mut script = String::new();
    let _ = write!(
        script,
        "local prefix, suffix = \"{prefix}\", \"{suffix}\"\n\
         math.randomseed(os.time())\n\
         wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n\
         request = function()\n  \
         return wrk.format(nil, prefix .. math.random(1, {max}) .. suffix)\n\
         end\n"
    );
    script
}

/// A wrk script asking, on every request, for one of `paths` at random:
/// each `(template, max)` with `{}` replaced by a random id in 1..=max, or
/// as it is when `max` is `None`; with the bearer token.
pub fn mixed_paths_script(paths: &[(&str, Option<u64>)], token: &str) -> String {
    let mut script = format!(
        "math.randomseed(os.time())\n\
         wrk.headers[\"Authorization\"] = \"Bearer {token}\"\n\
         local paths = {{\n"
    );
    for (template, max) in paths {
        let (prefix, suffix) = template.split_once("{}").unwrap_or((template, ""));
        let _ = writeln!(
            script,
            "  {{ \"{prefix}\", {}, \"{suffix}\" }},",
            max.unwrap_or(0)
        );
    }
    script.push_str(
        "}\n\
         request = function()\n  \
         local p = paths[math.random(1, #paths)]\n  \
         if p[2] == 0 then return wrk.format(nil, p[1]) end\n  \
         return wrk.format(nil, p[1] .. math.random(1, p[2]) .. p[3])\n\
         end\n",
    );
    // wrk's non-2xx count lumps 404s (a random customer without orders)
    // with server errors: count the 5xx apart, summed over the threads.
    script.push_str(
        "local threads = {}\n\
         function setup(thread) table.insert(threads, thread) end\n\
         function init(args) server_errors = 0 end\n\
         function response(status, headers, body)\n  \
         if status >= 500 then server_errors = server_errors + 1 end\n\
         end\n\
         function done(summary, latency, requests)\n  \
         local total = 0\n  \
         for _, thread in ipairs(threads) do total = total + thread:get(\"server_errors\") end\n  \
         io.write(string.format(\"Server errors (5xx): %d\\n\", total))\n\
         end\n",
    );
    script
}

/// `script` with its requests paced to about `rate` a second over
/// `connections`: each connection waits between its requests (wrk's
/// `delay`), so the latencies are the servers' answers while they share the
/// machine with a load, not the queue of a client that sends the next
/// request the moment one is answered. A rate of 0 leaves it unpaced.
pub fn paced(mut script: String, rate: u32, connections: u32) -> String {
    if rate > 0 {
        let wait_ms = (u64::from(connections) * 1000 / u64::from(rate)).max(1);
        let _ = writeln!(script, "function delay() return {wait_ms} end");
    }
    script
}

/// The 5xx count a [`mixed_paths_script`] run printed, if it printed one.
pub fn server_errors(output: &str) -> Option<u64> {
    output
        .lines()
        .find_map(|line| line.strip_prefix("Server errors (5xx): "))
        .and_then(|count| count.trim().parse().ok())
}

/// wrk's arguments: two threads, `connections`, `seconds`, the token, the
/// latency distribution when measuring (not when warming up).
pub fn arguments(connections: u32, seconds: u32, latency: bool, token: &str) -> Vec<String> {
    let mut arguments = vec![
        "-t2".to_owned(),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
    ];
    if latency {
        arguments.push("--latency".into());
    }
    arguments.extend(["-H".to_owned(), format!("Authorization: Bearer {token}")]);
    arguments
}

/// A label as a file name part: `GET /orders?limit=100` -> `get__orders_limit_100`.
pub fn file_part(label: &str) -> String {
    label
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
Running 10s test @ http://127.0.0.1:9181/orders?limit=100
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.01ms  20.30ms   90.12%
    Req/Sec     1.95k   120.11     2.20k    70.00%
  Latency Distribution
     50%    1.93ms
     75%    2.40ms
     90%    3.01ms
     99%    6.12ms
  38812 requests in 10.00s, 25.01MB read
  Non-2xx or 3xx responses: 12
Requests/sec:   3880.65
Transfer/sec:      2.50MB
";

    #[test]
    fn the_figures_come_from_the_latency_distribution_and_the_summary() {
        assert_eq!(
            parse(OUTPUT),
            Figures {
                p50: "1.93ms".into(),
                p99: "6.12ms".into(),
                requests_per_sec: "3881".into(),
                non_2xx: "12".into(),
            }
        );
        let without_errors = OUTPUT.replace("  Non-2xx or 3xx responses: 12\n", "");
        assert_eq!(parse(&without_errors).non_2xx, "0");
    }

    #[test]
    fn rows_keep_the_columns_of_bench_api_sh() {
        let figures = parse(OUTPUT);
        assert_eq!(
            row("GET /health", &figures),
            "GET /health                                     1.93ms    6.12ms       3881       12"
        );
        assert_eq!(header().len(), row("GET /health", &figures).len());
    }

    #[test]
    fn the_script_splits_the_template_at_its_placeholder() {
        let script = random_path_script("/customers/{}/orders", 100, "t0ken");
        assert!(script.starts_with("local prefix, suffix = \"/customers/\", \"/orders\"\n"));
        assert!(script.contains("wrk.headers[\"Authorization\"] = \"Bearer t0ken\"\n"));
        assert!(script.contains("math.random(1, 100)"));
    }

    #[test]
    fn the_mixed_script_lists_every_path_with_its_largest_id() {
        let script = mixed_paths_script(
            &[("/customers/{}", Some(10)), ("/analytics/summary", None)],
            "t0ken",
        );
        assert!(
            script.contains("  { \"/customers/\", 10, \"\" },\n"),
            "{script}"
        );
        assert!(
            script.contains("  { \"/analytics/summary\", 0, \"\" },\n"),
            "{script}"
        );
        assert!(script.contains("paths[math.random(1, #paths)]"));
        assert!(script.contains("\"Bearer t0ken\""));
        assert!(script.contains("if status >= 500 then"));
        assert_eq!(
            server_errors("Requests/sec: 1\nServer errors (5xx): 3\n"),
            Some(3)
        );
        assert_eq!(server_errors(OUTPUT), None);
    }

    #[test]
    fn a_paced_script_waits_between_requests_on_each_connection() {
        let script = mixed_paths_script(&[("/analytics/summary", None)], "t");
        // 4 connections at 100 requests a second: 40 ms between each one's.
        assert!(paced(script.clone(), 100, 4).ends_with("function delay() return 40 end\n"));
        assert_eq!(paced(script.clone(), 0, 4), script);
        assert!(paced(script, 100_000, 4).ends_with("return 1 end\n"));
    }

    #[test]
    fn arguments_and_file_names() {
        assert_eq!(
            arguments(8, 2, false, "t"),
            ["-t2", "-c8", "-d2s", "-H", "Authorization: Bearer t"]
        );
        assert!(arguments(8, 10, true, "t").contains(&"--latency".to_owned()));
        assert_eq!(file_part("GET /orders?limit=100"), "get__orders_limit_100");
    }
}
