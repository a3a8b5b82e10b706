#!/usr/bin/env bash
# `make bench`: times the real ingest path (LocalStack S3 -> the ingest code
# the Lambda runs -> PostgreSQL -> processed_orders.csv back to S3) on
# generated data, against the floor of plain `\copy` into bare tables plus the
# same keys built afterwards, on the same PostgreSQL in the same run.
#
#   BENCH_ORDERS     orders in the main file            (default 1000000)
#   BENCH_INCREMENT  orders in the incremental file     (default 100000)
#   BENCH_SMALL      orders in the small run, to show that memory stays flat
#                    (default 100000; BENCH_ORDERS/10 when that is not smaller)
#   BENCH_LARGE      orders in the large run, the other end of the memory check
#                    (default 3000000; 0, or not above BENCH_ORDERS, skips it)
#
# Uses the private PostgreSQL (127.0.0.1:54329) and LocalStack (127.0.0.1:4566)
# of scripts/local.sh, starting them if they are not running and stopping only
# what it started. Everything it creates (databases bench_*, bucket bench-*
# and its queues) is removed on exit. Talks to nothing but 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LOCAL="$ROOT/.local"
PIDS="$LOCAL/pids"
OUT="$LOCAL/bench"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PORT="${PG_PORT:-54329}"
# Same data directory as scripts/local.sh, so we stop the cluster it starts.
PG_DATA="${PG_DATA:-/tmp/order-pipeline-pg-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)}"
ADMIN_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export RUST_LOG="${RUST_LOG:-warn}"

BENCH_ORDERS="${BENCH_ORDERS:-1000000}"
BENCH_INCREMENT="${BENCH_INCREMENT:-100000}"
BENCH_SMALL="${BENCH_SMALL:-100000}"
BENCH_LARGE="${BENCH_LARGE:-3000000}"
if [ "$BENCH_SMALL" -ge "$BENCH_ORDERS" ]; then
  BENCH_SMALL=$((BENCH_ORDERS / 10 > 0 ? BENCH_ORDERS / 10 : 1))
fi
SIZES=("$BENCH_SMALL" "$BENCH_ORDERS")
if [ "$BENCH_LARGE" -gt "$BENCH_ORDERS" ]; then SIZES+=("$BENCH_LARGE"); fi

STAMP="$(date +%Y%m%d%H%M%S)_$$"
BENCH_BUCKET="bench-${STAMP//_/-}"
DATABASES=()
STARTED=()

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

psql_admin() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" "$@"; }
db_url() { echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
postgres_up() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }
localstack_up() { curl -sf http://127.0.0.1:4566/_localstack/health >/dev/null; }

# ------------------------------------------------------------------ cleanup

# Deletes the bench bucket's objects, the bucket and its queues, with the
# boto3 that LocalStack's own venv brings (or the aws CLI).
delete_bucket() {
  local py="$LOCAL/localstack-venv/bin/python"
  if [ -x "$py" ]; then
    "$py" "$ROOT/scripts/delete-bucket.py" "$BENCH_BUCKET"
  elif command -v aws >/dev/null; then
    aws --endpoint-url "$AWS_ENDPOINT_URL" s3 rb "s3://$BENCH_BUCKET" --force >/dev/null 2>&1 || true
    for q in "$BENCH_BUCKET-ingest" "$BENCH_BUCKET-ingest-dlq"; do
      url=$(aws --endpoint-url "$AWS_ENDPOINT_URL" sqs get-queue-url --queue-name "$q" \
        --query QueueUrl --output text 2>/dev/null) &&
        aws --endpoint-url "$AWS_ENDPOINT_URL" sqs delete-queue --queue-url "$url" || true
    done
  else
    echo "bench: cannot delete s3://$BENCH_BUCKET (no boto3 or aws CLI)" >&2
  fi
}

# A service this script started may have been adopted meanwhile by someone
# else (scripts/local.sh test uses whatever answers on the port): then it is
# left running for them, to be stopped with `make down`.
postgres_in_use() {
  local n
  n=$(psql_admin -Atc "SELECT (SELECT count(*) FROM pg_stat_activity
                                WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())
                             + (SELECT count(*) FROM pg_database
                                WHERE datname NOT IN ('postgres', 'template0', 'template1', 'orders'))") ||
    return 1
  [ "${n:-0}" -gt 0 ]
}

localstack_in_use() { # it started empty and our bucket is gone: any bucket is someone else's
  local py="$LOCAL/localstack-venv/bin/python" n
  [ -x "$py" ] || return 1
  n=$("$py" -c 'import boto3
print(len(boto3.client("s3", endpoint_url="http://127.0.0.1:4566", region_name="us-east-1",
      aws_access_key_id="test", aws_secret_access_key="test").list_buckets()["Buckets"]))') || return 1
  [ "${n:-0}" -gt 0 ]
}

stop_started() { # only what this script started, by the PID local.sh recorded
  local s pid
  for s in "${STARTED[@]}"; do
    case $s in
      postgres)
        if postgres_in_use; then
          say "leaving PostgreSQL running: other clients use it now (make down stops it)"
          continue
        fi
        say "stopping PostgreSQL (started by bench)"
        if [ "$(id -u)" = 0 ]; then
          runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
        else
          "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
        fi
        rm -f "$PIDS/postgres.pid"
        ;;
      localstack)
        if localstack_in_use; then
          say "leaving LocalStack running: other clients use it now (make down stops it)"
          continue
        fi
        say "stopping LocalStack (started by bench)"
        if [ -f "$PIDS/localstack.pid" ]; then
          pid=$(cat "$PIDS/localstack.pid")
          kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
          for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
          kill -KILL -- "-$pid" 2>/dev/null || true
          rm -f "$PIDS/localstack.pid"
        fi
        ;;
    esac
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ "${#DATABASES[@]}" -gt 0 ] && postgres_up; then
    say "dropping ${DATABASES[*]}"
    for db in "${DATABASES[@]}"; do
      psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
    done
  fi
  if localstack_up; then
    say "deleting s3://$BENCH_BUCKET and its queues"
    delete_bucket
  fi
  stop_started
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ setup

if ! [ -x /usr/bin/time ]; then
  [ "$(id -u)" = 0 ] || die "/usr/bin/time is missing: apt-get install time"
  say "installing /usr/bin/time (apt-get install time)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi

postgres_up || STARTED+=(postgres)
localstack_up || STARTED+=(localstack)
# The admin URL below is the private cluster's: never someone's DATABASE_URL.
env -u DATABASE_URL "$ROOT/scripts/local.sh" services
for s in "${STARTED[@]}"; do say "started $s for the benchmark (stopped at the end)"; done

say "building the workspace (release)"
cargo build --workspace --release --quiet
PIPELINE_LOCAL="$ROOT/target/release/pipeline-local"
DATAGEN="$ROOT/target/release/datagen"
PIPELINE_LOCAL_HELP=$("$PIPELINE_LOCAL" --help)
grep -qE '^ +ingest ' <<<"$PIPELINE_LOCAL_HELP" ||
  die "target/release/pipeline-local has no ingest subcommand yet"

# ------------------------------------------------------------------ data

generate() { # generate DIR ORDERS SEED FIRST_ORDER_ID
  "$DATAGEN" --orders "$2" --seed "$3" --first-order-id "$4" --out "$1" 2>"$1.summary" ||
    { cat "$1.summary" >&2; exit 1; }
  sed 's/^datagen: /    /' "$1.summary" >&2
}
mkdir -p "$OUT"
say "generating data into $OUT"
INCR_DIR="$OUT/increment-$BENCH_INCREMENT"
for n in "${SIZES[@]}"; do generate "$OUT/orders-$n" "$n" 1 1; done
generate "$INCR_DIR" "$BENCH_INCREMENT" 2 $((BENCH_ORDERS + 1))

data_rows() { # data rows of both files in DIR
  echo $(($(wc -l <"$1/orders.csv") + $(wc -l <"$1/barcodes.csv") - 2))
}

say "creating bucket s3://$BENCH_BUCKET"
"$PIPELINE_LOCAL" --bucket "$BENCH_BUCKET" bootstrap >/dev/null

new_database() { # new_database NAME: created and remembered for cleanup
  DATABASES+=("$1")
  psql_admin -c "CREATE DATABASE \"$1\""
}

# ------------------------------------------------------------------ runs

# real_ingest LABEL DIR DB: uploads DIR's files to incoming/ and times
# `pipeline-local ingest` on them into DB. Sets R_SECS and R_RSS_MB.
real_ingest() {
  local label=$1 dir=$2 db=$3 log="$OUT/$1.ingest"
  "$PIPELINE_LOCAL" --bucket "$BENCH_BUCKET" upload "$dir/orders.csv" "$dir/barcodes.csv" >/dev/null
  say "$label: real ingest path into $db"
  local t0 t1
  t0=$(now)
  if ! DATABASE_URL="$(db_url "$db")" /usr/bin/time -v -o "$log.time" \
    "$PIPELINE_LOCAL" --bucket "$BENCH_BUCKET" ingest incoming/orders.csv incoming/barcodes.csv \
    >"$log.json" 2>"$log.stderr"; then
    cat "$log.stderr" "$log.time" >&2
    die "$label: ingest failed"
  fi
  t1=$(now)
  R_SECS=$(secs "$t0" "$t1")
  # Seconds spent regenerating processed_orders.csv (0 if the report lacks it).
  R_PUBLISH=$(jq -s 'map(.timings.publish_ms // 0) | add / 1000 | . * 100 | round / 100' "$log.json")
  R_RSS_MB=$(awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$log.time")
  # Key, status, counts and timings of each report, whatever else it holds.
  jq -c '{key, status, counts, timings, processed_orders_written}' "$log.json" | sed 's/^/    /' >&2
  if jq -e 'select(.status != "loaded")' "$log.json" >/dev/null; then
    die "$label: a file was not loaded (see $log.json)"
  fi
}

# The key columns as migrations/ declares them: barcode compares bytewise
# (COLLATE "C"), which makes its index about twice as fast to build as under
# the database's default collation; a floor without it would flatter ingest.
FLOOR_SCHEMA="
CREATE TABLE orders (order_id bigint, customer_id bigint);
CREATE TABLE barcodes (barcode text COLLATE \"C\", order_id bigint);"
# The keys and indexes of migrations/, built after the load, with the memory
# the ingest's own index builds get. barcodes gets a plain index on barcode:
# a unique one cannot be built, the files hold deliberate duplicate barcodes
# (the real path rejects those rows instead).
FLOOR_KEYS="
SET maintenance_work_mem = '512MB';
ALTER TABLE orders ADD PRIMARY KEY (order_id);
CREATE INDEX ON orders (customer_id, order_id);
CREATE INDEX ON barcodes (barcode);
CREATE INDEX ON barcodes (order_id);"

# floor DIR DB [keys]: \copy both files into bare tables, then build the keys
# (unless they exist already: the incremental floor copies into indexed
# tables). Sets F_SECS, F_COPY_SECS, F_KEYS_SECS.
floor() {
  local dir=$1 db=$2 build_keys=${3:-keys} t0 t1 t2
  local url
  url=$(db_url "$db")
  t0=$(now)
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$url" \
    -c "\\copy orders FROM '$dir/orders.csv' CSV HEADER" \
    -c "\\copy barcodes FROM '$dir/barcodes.csv' CSV HEADER"
  t1=$(now)
  if [ "$build_keys" = keys ]; then
    "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$url" -c "$FLOOR_KEYS"
  fi
  t2=$(now)
  F_COPY_SECS=$(secs "$t0" "$t1")
  F_KEYS_SECS=$(secs "$t1" "$t2")
  F_SECS=$(secs "$t0" "$t2")
}

declare -A ROWS SECS RSS PUBLISH FLOOR FLOOR_COPY FLOOR_KEYS
for n in "${SIZES[@]}"; do
  dir="$OUT/orders-$n"
  db="bench_${STAMP}_n$n"
  new_database "$db"
  DATABASE_URL="$(db_url "$db")" "$PIPELINE_LOCAL" migrate >/dev/null
  real_ingest "orders-$n" "$dir" "$db"
  ROWS[$n]=$(data_rows "$dir") SECS[$n]=$R_SECS RSS[$n]=$R_RSS_MB PUBLISH[$n]=$R_PUBLISH

  floor_db="bench_${STAMP}_floor_n$n"
  new_database "$floor_db"
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$(db_url "$floor_db")" -c "$FLOOR_SCHEMA"
  say "orders-$n: floor (\\copy into bare tables, then keys) in $floor_db"
  floor "$dir" "$floor_db"
  FLOOR[$n]=$F_SECS FLOOR_COPY[$n]=$F_COPY_SECS FLOOR_KEYS[$n]=$F_KEYS_SECS
  if [ "$n" != "$BENCH_ORDERS" ]; then # only the main run's databases are used again
    for d in "$db" "$floor_db"; do psql_admin -c "DROP DATABASE \"$d\" WITH (FORCE)"; done
  fi
done

# The incremental file, into the database the main file was ingested into.
real_ingest "increment-$BENCH_INCREMENT" "$INCR_DIR" "bench_${STAMP}_n$BENCH_ORDERS"
INCR_ROWS=$(data_rows "$INCR_DIR") INCR_SECS=$R_SECS INCR_RSS=$R_RSS_MB INCR_PUBLISH=$R_PUBLISH
say "increment-$BENCH_INCREMENT: floor (\\copy into the already indexed floor tables)"
floor "$INCR_DIR" "bench_${STAMP}_floor_n$BENCH_ORDERS" nokeys
INCR_FLOOR=$F_SECS

# ------------------------------------------------------------------ report

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
rate() { awk -v r="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.0f", r / s; else print "-" }'; }

report() {
  echo
  echo "Ingest benchmark: $(nproc) cores, PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') (fsync=off), LocalStack S3, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "rows = orders.csv + barcodes.csv data rows; ingest = wall time of"
  echo "  pipeline-local ingest incoming/orders.csv incoming/barcodes.csv (S3 GET, parse, COPY + merge, processed_orders.csv PUT)"
  echo "publish = the part of ingest after the commits spent publishing processed_orders.csv (timings.publish_ms);"
  echo "  a first barcodes load writes the file inside its load, so there it is the upload alone"
  echo "floor = psql \\copy of both files into bare tables of the same column types + keys built afterwards (copy + keys seconds)"
  echo "ratio = ingest / floor; load ratio = (ingest - publish) / floor, the load alone against the same floor"
  echo
  printf '%-22s %10s %10s %10s %18s %8s %10s %10s %12s\n' \
    "run" "rows" "ingest s" "publish s" "floor s (c+k)" "ratio" "load ratio" "rows/s" "peak RSS MB"
  for n in "${SIZES[@]}"; do
    printf '%-22s %10s %10s %10s %18s %8s %10s %10s %12s\n' \
      "orders $n" "${ROWS[$n]}" "${SECS[$n]}" "${PUBLISH[$n]}" \
      "${FLOOR[$n]} (${FLOOR_COPY[$n]}+${FLOOR_KEYS[$n]})" \
      "$(ratio "${SECS[$n]}" "${FLOOR[$n]}")" "$(ratio "$(minus "${SECS[$n]}" "${PUBLISH[$n]}")" "${FLOOR[$n]}")" \
      "$(rate "${ROWS[$n]}" "${SECS[$n]}")" "${RSS[$n]}"
  done
  printf '%-22s %10s %10s %10s %18s %8s %10s %10s %12s\n' \
    "+increment $BENCH_INCREMENT" "$INCR_ROWS" "$INCR_SECS" "$INCR_PUBLISH" "$INCR_FLOOR (copy)" \
    "$(ratio "$INCR_SECS" "$INCR_FLOOR")" "$(ratio "$(minus "$INCR_SECS" "$INCR_PUBLISH")" "$INCR_FLOOR")" \
    "$(rate "$INCR_ROWS" "$INCR_SECS")" "$INCR_RSS"
  echo
  echo "Floor keys: orders PRIMARY KEY (order_id), index orders (customer_id, order_id), index barcodes (order_id),"
  echo "  and a plain, NOT unique, index on barcodes (barcode): the files hold deliberate duplicate barcodes,"
  echo "  so a unique index cannot be built (the real path rejects those rows instead)."
  echo "The increment's floor copies into the already indexed floor tables of the main run."
  echo "Reports and /usr/bin/time output: $OUT/*.ingest.{json,time,stderr}; this table: $OUT/results-$STAMP.txt"
}
report | tee "$OUT/results-$STAMP.txt"
