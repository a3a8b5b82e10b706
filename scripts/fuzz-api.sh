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

PREFIX=fuzz_api NAME=fuzz-api
# shellcheck source=scripts/api-data.sh
. "$(dirname "${BASH_SOURCE[0]}")/api-data.sh"

# The version the contract was checked with; a newer one may add checks.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV="$ROOT/.local/schemathesis-venv"
EXAMPLES="${FUZZ_API_EXAMPLES:-500}"
ORDERS="${FUZZ_API_ORDERS:-20000}"
SEED="${FUZZ_API_SEED:-}"
PORT="${FUZZ_API_PORT:-9300}"
BASE_URL="http://127.0.0.1:$PORT"

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
generate_data "$BIN" "$ORDERS"
prepare_data "$BIN"
ingest_data "$BIN"
make_token "$BIN" 2

say "serving the API on $BASE_URL"
DATABASE_URL="$DB_URL" JWT_SECRET="$SECRET" BUCKET="$BUCKET" RUST_LOG="${RUST_LOG:-warn}" \
  "$BIN/apiserve" --addr "127.0.0.1:$PORT" >"$OUT/apiserve-$STAMP.log" 2>&1 &
SERVER_PIDS+=($!)
for _ in $(seq 40); do curl -sf "$BASE_URL/health" >/dev/null && break; sleep 0.25; done
curl -sf "$BASE_URL/health" >/dev/null || die "the API did not start; see $OUT/apiserve-$STAMP.log"

say "schemathesis $SCHEMATHESIS_VERSION: every check, $EXAMPLES examples per operation${SEED:+, seed $SEED}"
started=$(date +%s)
# One worker: with two, CPython 3.11.7's ast.parse (called by hypothesis
# from both threads) fails with "AST constructor recursion depth mismatch".
# From OUT: schemathesis keeps a crash cache (.schemathesis/) where it runs.
(cd "$OUT" && "$SCHEMATHESIS_VENV/bin/schemathesis" --config-file "$ROOT/scripts/schemathesis.toml" run "$BASE_URL/openapi.json" \
  -H "Authorization: Bearer $TOKEN" --checks all --max-examples "$EXAMPLES" --workers 1 \
  ${SEED:+--seed "$SEED"} --no-color --output-sanitize true --generation-database "$OUT/examples" \
  --report junit,ndjson --report-dir "$OUT/report-$STAMP")
say "schemathesis passed in $(($(date +%s) - started)) s (reports: $OUT/report-$STAMP)"
