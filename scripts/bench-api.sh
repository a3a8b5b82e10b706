#!/usr/bin/env bash
# `make bench-api`: the HTTP API's speed at scale. Generates BENCH_API_ORDERS
# orders (about 3.3 barcodes each) with tools/datagen, loads them through the
# real ingest path (LocalStack S3 -> the ingest code -> PostgreSQL), serves
# the orders and analytics routers as plain local HTTP servers (release
# builds, LOCAL_HTTP_ADDR), and drives each endpoint with wrk.
#
#   BENCH_API_ORDERS    orders to load                   (default 1000000)
#   BENCH_API_DURATION  seconds of load per endpoint     (default 10)
#   BENCH_API_CONNS     concurrent connections           (default 8)
#   BENCH_API_POOL      database connections per server  (default 8)
#
# Uses the private PostgreSQL (127.0.0.1:54329) and LocalStack (127.0.0.1:4566)
# of scripts/local.sh, starting them if needed (left running: `make down`).
# Its database bench_api_* and bucket bench-api-* are removed on exit; the
# generated data stays in .local/bench-api/ for the next run. Talks to
# nothing but 127.0.0.1.
set -euo pipefail

PREFIX=bench_api NAME=bench-api
# shellcheck source=scripts/api-data.sh
. "$(dirname "${BASH_SOURCE[0]}")/api-data.sh"

ORDERS="${BENCH_API_ORDERS:-1000000}"
DURATION="${BENCH_API_DURATION:-10}"
CONNS="${BENCH_API_CONNS:-8}"
POOL="${BENCH_API_POOL:-8}"
ORDERS_PORT="${BENCH_API_ORDERS_PORT:-9181}"
ANALYTICS_PORT="${BENCH_API_ANALYTICS_PORT:-9182}"
if ! command -v wrk >/dev/null; then
  [ "$(id -u)" = 0 ] || die "wrk is missing: apt-get install wrk"
  say "installing wrk (apt-get install wrk)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
command -v jq >/dev/null || die "jq is missing: apt-get install jq"

# The load needs a few GB (PostgreSQL's WAL and tables, the release build):
# a full disk would crash the shared PostgreSQL, so refuse early.
FREE_GB=$(df -Pk "$ROOT" /tmp | awk 'NR > 1 { gb = int($4 / 1048576); if (min == "" || gb < min) min = gb } END { print min }')
[ "$FREE_GB" -ge 6 ] || die "only ${FREE_GB} GB free on disk; the benchmark needs about 6 GB (cargo clean frees target/)"

env -u DATABASE_URL "$ROOT/scripts/local.sh" services

say "building the workspace (release)"
cargo build --workspace --release --quiet
BIN="$ROOT/target/release"

generate_data "$BIN" "$ORDERS"
prepare_data "$BIN"
t0=$(date +%s)
ingest_data "$BIN"
say "ingested in $(($(date +%s) - t0)) s: $(jq -c '{key, status, accepted: .counts.accepted}' "$OUT/ingest-$STAMP.json" | tr '\n' ' ')"
"$PG_BIN/psql" -X -q "$DB_URL" -c "VACUUM ANALYZE" >/dev/null
STATS=$("$PG_BIN/psql" -X -Atq "$DB_URL" -c "SELECT orders || ' orders, ' || barcodes || ' barcodes, ' || unused_barcodes || ' unused' FROM pipeline_stats")
CUSTOMERS=$((ORDERS / 10 > 0 ? ORDERS / 10 : 1))

make_token "$BIN" 1

serve() { # serve NAME PORT
  DATABASE_URL="$DB_URL" DATABASE_POOL_SIZE="$POOL" JWT_SECRET="$SECRET" BUCKET="$BUCKET" \
    LOCAL_HTTP_ADDR="127.0.0.1:$2" RUST_LOG="${RUST_LOG:-warn}" \
    "$BIN/$1" >"$OUT/$1-$STAMP.log" 2>&1 &
  SERVER_PIDS+=($!)
  for _ in $(seq 40); do curl -sf "http://127.0.0.1:$2/health" >/dev/null && return 0; sleep 0.25; done
  die "$1 did not start; see $OUT/$1-$STAMP.log"
}
say "serving orders on :$ORDERS_PORT and analytics on :$ANALYTICS_PORT (pool $POOL, RUST_LOG=${RUST_LOG:-warn})"
serve orders "$ORDERS_PORT"
serve analytics "$ANALYTICS_PORT"

# A Lua script for wrk that asks for a random id in 1..MAX per request.
random_path() { # random_path TEMPLATE MAX: TEMPLATE has {} where the id goes
  local file="$OUT/random-$STAMP-$RANDOM.lua"
  cat >"$file" <<LUA
local prefix, suffix = "${1%%\{\}*}", "${1#*\{\}}"
math.randomseed(os.time())
wrk.headers["Authorization"] = "Bearer $TOKEN"
request = function()
  return wrk.format(nil, prefix .. math.random(1, $2) .. suffix)
end
LUA
  echo "$file"
}

RESULTS=()
run() { # run LABEL PORT PATH [lua]
  local label=$1 port=$2 path=$3 script=${4:-} out
  # Warm up (connections, plans), then measure.
  wrk -t2 -c"$CONNS" -d2s -H "Authorization: Bearer $TOKEN" ${script:+-s "$script"} \
    "http://127.0.0.1:$port$path" >/dev/null
  out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" \
    ${script:+-s "$script"} "http://127.0.0.1:$port$path")
  echo "$out" >"$OUT/wrk-$STAMP-${label//[^a-z0-9]/_}.txt"
  local p50 p99 rps non2xx
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
  non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
  RESULTS+=("$(printf '%-44s %9s %9s %10s %8s' "$label" "$p50" "$p99" "$rps" "${non2xx:-0}")")
  say "$label: p50 $p50, p99 $p99, $rps req/s"
}

run "GET /health" "$ORDERS_PORT" "/health"
run "GET /analytics/top-customers?limit=5" "$ANALYTICS_PORT" "/analytics/top-customers?limit=5"
run "GET /analytics/summary" "$ANALYTICS_PORT" "/analytics/summary"
run "GET /analytics/unused-barcodes?limit=0" "$ANALYTICS_PORT" "/analytics/unused-barcodes?limit=0"
run "GET /analytics/unused-barcodes?limit=100" "$ANALYTICS_PORT" "/analytics/unused-barcodes?limit=100"
run "GET /customers/{random}/orders" "$ORDERS_PORT" "/" "$(random_path "/customers/{}/orders" "$CUSTOMERS")"
run "GET /customers/{random}" "$ORDERS_PORT" "/" "$(random_path "/customers/{}" "$CUSTOMERS")"
run "GET /orders/{random}" "$ORDERS_PORT" "/" "$(random_path "/orders/{}" "$ORDERS")"
run "GET /orders?limit=100" "$ORDERS_PORT" "/orders?limit=100"
run "GET /ingestions" "$ANALYTICS_PORT" "/ingestions"

{
  echo
  echo "API benchmark: $(nproc) cores, PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') (fsync=off), $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "data: $STATS, $CUSTOMERS customers (tools/datagen --orders $ORDERS, loaded by the real ingest path)"
  echo "wrk -t2 -c$CONNS -d${DURATION}s against release builds served with LOCAL_HTTP_ADDR (pool $POOL, RUST_LOG=${RUST_LOG:-warn});"
  echo "wrk shares the 2 cores with the servers and PostgreSQL. {random}: a random id per request."
  echo
  printf '%-44s %9s %9s %10s %8s\n' "endpoint" "p50" "p99" "req/s" "non-2xx"
  printf '%s\n' "${RESULTS[@]}"
} | tee "$OUT/results-$STAMP.txt"
