#!/usr/bin/env bash
# `make fuzz-api` (and the bounded run at the end of `make test`): the HTTP
# API against its own OpenAPI document, with schemathesis and every check it
# has, including the stateful phase that follows the document's links
# (POST /orders -> GET /orders/{order_id}, ...). Runs as a new user would:
# one base URL serving /openapi.json and every route (tools/apiserve routes
# the paths as `cargo lambda watch` does), over a database loaded with
# generated data (tools/datagen, through the real ingest path) so that
# valid ids exist and 404s do not hide the handlers.
#
#   FUZZ_API_EXAMPLES  test cases per operation and phase  (default 500)
#   FUZZ_API_ORDERS    orders to load                      (default 20000)
#   FUZZ_API_SEED      schemathesis seed                   (default: random)
#   FUZZ_API_PORT      where the API listens               (default 9300)
#
# Exits non-zero when schemathesis reports any failure; each comes with a
# curl line to reproduce it. Reports (JUnit, NDJSON) and the server log go
# to .local/fuzz-api/. Uses the private PostgreSQL and LocalStack of
# scripts/local.sh, starting them if needed; its database fuzz_api_* and
# bucket fuzz-api-* are removed on exit. Talks to nothing but 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/.local/fuzz-api"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PORT="${PG_PORT:-54329}"
ADMIN_URL="${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:$PG_PORT/postgres}"
export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1

# The version the contract was checked with; a newer one may add checks.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV="$ROOT/.local/schemathesis-venv"
EXAMPLES="${FUZZ_API_EXAMPLES:-500}"
ORDERS="${FUZZ_API_ORDERS:-20000}"
SEED="${FUZZ_API_SEED:-}"
PORT="${FUZZ_API_PORT:-9300}"
BASE_URL="http://127.0.0.1:$PORT"
STAMP="$(date +%Y%m%d%H%M%S)_$$"
DB="fuzz_api_$STAMP"
BUCKET="fuzz-api-${STAMP//_/-}"
DB_URL="${ADMIN_URL%/*}/$DB"
SERVER_PID=

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'fuzz-api: error: %s\n' "$*" >&2; exit 1; }
psql_admin() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null; fi
  psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" 2>/dev/null
  local py="$ROOT/.local/localstack-venv/bin/python"
  [ -x "$py" ] && "$py" "$ROOT/scripts/delete-bucket.py" "$BUCKET" 2>/dev/null
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

install_schemathesis() {
  [ -x "$SCHEMATHESIS_VENV/bin/schemathesis" ] &&
    [ "$("$SCHEMATHESIS_VENV/bin/schemathesis" --version | awk '{print $NF}')" = "$SCHEMATHESIS_VERSION" ] && return 0
  say "installing schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_VENV (once)"
  python3 -m venv "$SCHEMATHESIS_VENV"
  "$SCHEMATHESIS_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}

# Nothing else may answer on the port: schemathesis would test it instead.
curl -s -o /dev/null "$BASE_URL/" && die "something already listens on $BASE_URL; set FUZZ_API_PORT"

install_schemathesis
env -u DATABASE_URL "$ROOT/scripts/local.sh" services
cargo build --workspace --quiet
BIN="$ROOT/target/debug"
mkdir -p "$OUT"

DATA="$OUT/orders-$ORDERS"
if [ ! -s "$DATA/barcodes.csv" ]; then
  say "generating $ORDERS orders into $DATA"
  "$BIN/datagen" --orders "$ORDERS" --seed 1 --first-order-id 1 --out "$DATA"
fi

say "loading them through the real ingest path into $DB (bucket $BUCKET)"
psql_admin -c "CREATE DATABASE \"$DB\""
DATABASE_URL="$DB_URL" "$BIN/localenv" migrate >/dev/null
"$BIN/localenv" --bucket "$BUCKET" bootstrap >/dev/null
"$BIN/localenv" --bucket "$BUCKET" upload "$DATA/orders.csv" "$DATA/barcodes.csv" >/dev/null
DATABASE_URL="$DB_URL" RUST_LOG=warn "$BIN/localenv" --bucket "$BUCKET" ingest \
  incoming/orders.csv incoming/barcodes.csv >"$OUT/ingest-$STAMP.json"

SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
(umask 077; printf 'JWT_SECRET=%s\n' "$SECRET" >"$OUT/token.env")
TOKEN=$("$BIN/localenv" token --env-file "$OUT/token.env" --hours 2)
rm -f "$OUT/token.env"

say "serving the API on $BASE_URL"
DATABASE_URL="$DB_URL" JWT_SECRET="$SECRET" BUCKET="$BUCKET" RUST_LOG="${RUST_LOG:-warn}" \
  "$BIN/apiserve" --addr "127.0.0.1:$PORT" >"$OUT/apiserve-$STAMP.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 40); do curl -sf "$BASE_URL/health" >/dev/null && break; sleep 0.25; done
curl -sf "$BASE_URL/health" >/dev/null || die "the API did not start; see $OUT/apiserve-$STAMP.log"

say "schemathesis $SCHEMATHESIS_VERSION: every check, $EXAMPLES examples per operation${SEED:+, seed $SEED}"
started=$(date +%s)
"$SCHEMATHESIS_VENV/bin/schemathesis" --config-file "$ROOT/scripts/schemathesis.toml" run "$BASE_URL/openapi.json" \
  -H "Authorization: Bearer $TOKEN" --checks all --max-examples "$EXAMPLES" --workers 1 \
  ${SEED:+--seed "$SEED"} --no-color --output-sanitize true --generation-database "$OUT/examples" \
  --report junit,ndjson --report-dir "$OUT/report-$STAMP"
say "schemathesis passed in $(($(date +%s) - started)) s (reports: $OUT/report-$STAMP)"
