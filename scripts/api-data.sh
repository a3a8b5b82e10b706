# Sourced by scripts/bench-api.sh and scripts/fuzz-api.sh: the HTTP API
# over generated data. A fresh database and bucket (named PREFIX_<stamp>),
# tools/datagen data loaded into them through the real ingest path
# (LocalStack S3 -> the ingest code -> PostgreSQL), a throwaway JWT secret
# and token, and on exit the servers stopped and the database and bucket
# removed. Talks to nothing but 127.0.0.1.
#
# The caller sets PREFIX and NAME (for messages; data, logs and results go
# to .local/NAME), then calls the functions below in order.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/.local/$NAME"

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PORT="${PG_PORT:-54329}"
ADMIN_URL="${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:$PG_PORT/postgres}"
export AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1

STAMP="$(date +%Y%m%d%H%M%S)_$$"
DB="${PREFIX}_$STAMP"
BUCKET="${PREFIX//_/-}-${STAMP//_/-}"
DB_URL="${ADMIN_URL%/*}/$DB"
SERVER_PIDS=()
mkdir -p "$OUT"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$NAME" "$*" >&2; exit 1; }
psql_admin() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  psql_admin -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" 2>/dev/null
  local py="$ROOT/.local/localstack-venv/bin/python"
  if [ -x "$py" ]; then
    "$py" "$ROOT/scripts/delete-bucket.py" "$BUCKET" 2>/dev/null
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

generate_data() { # generate_data BIN ORDERS: sets DATA (kept in OUT for the next run)
  DATA="$OUT/orders-$2"
  if [ ! -s "$DATA/barcodes.csv" ]; then
    say "generating $2 orders into $DATA"
    "$1/datagen" --orders "$2" --seed 1 --first-order-id 1 --out "$DATA"
  fi
}

prepare_data() { # prepare_data BIN: the database migrated, the bucket made, DATA uploaded
  say "loading through the real ingest path into $DB (bucket $BUCKET)"
  psql_admin -c "CREATE DATABASE \"$DB\""
  DATABASE_URL="$DB_URL" "$1/pipeline-local" migrate >/dev/null
  "$1/pipeline-local" --bucket "$BUCKET" bootstrap >/dev/null
  "$1/pipeline-local" --bucket "$BUCKET" upload "$DATA/orders.csv" "$DATA/barcodes.csv" >/dev/null
}

ingest_data() { # ingest_data BIN: ingests the uploaded files; the reports go to OUT/ingest-STAMP.json
  DATABASE_URL="$DB_URL" RUST_LOG=warn "$1/pipeline-local" --bucket "$BUCKET" ingest \
    incoming/orders.csv incoming/barcodes.csv >"$OUT/ingest-$STAMP.json"
}

make_token() { # make_token BIN HOURS: sets SECRET (for the servers) and TOKEN (every scope)
  SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  (umask 077; printf 'JWT_SECRET=%s\n' "$SECRET" >"$OUT/token.env")
  TOKEN=$("$1/pipeline-local" token --env-file "$OUT/token.env" --hours "$2")
  rm -f "$OUT/token.env"
}
