#!/usr/bin/env bash
# Local environment for the order pipeline: installs its tools into .local/,
# starts and stops PostgreSQL, LocalStack, the functions and the SQS
# forwarder. Every process it starts is recorded by PID in .local/pids/ and
# stopped by that PID. The Makefile is the front door; see `make help`. The
# benchmarks and the API fuzzing are `cargo xtask` tasks (tools/xtask) that
# call this script for the services and installers they need.
set -euo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PIDS="$LOCAL/pids"
LOGS="$LOCAL/logs"
mkdir -p "$PIDS" "$LOGS"

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PORT="${PG_PORT:-54329}"
# PostgreSQL refuses to run as root, and its data directory must be reachable
# by the user it runs as: keep it under /tmp, one per checkout.
PG_DATA="${PG_DATA:-/tmp/order-pipeline-pg-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)}"
LOCALSTACK_PORT=4566
WATCH_PORT=9000
BUCKET="${BUCKET:-orders}"
DB_NAME="${DB_NAME:-orders}"
LOCALSTACK_VENV="$LOCAL/localstack-venv"
ENV_FILE="$LOCAL/functions.env"
# One more file per function, with its own database user (see write_function_env).
FUNCTION_ENV_DIR="$LOCAL/env"
export AWS_ENDPOINT_URL="http://127.0.0.1:$LOCALSTACK_PORT"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}" AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

as_pg() { # run a PostgreSQL binary as the postgres user when we are root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pid_alive() { [ -f "$PIDS/$1.pid" ] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $((seconds * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  die "$what did not come up in ${seconds}s; see $LOGS/"
}

# ---------------------------------------------------------------- installs

install_localstack() {
  [ -x "$LOCALSTACK_VENV/bin/localstack" ] && return 0
  say "installing LocalStack 4.13.1 into $LOCALSTACK_VENV (about a minute, once)"
  python3 -m venv "$LOCALSTACK_VENV"
  # The last community release that runs on Python 3.11, with the pins it needs.
  "$LOCALSTACK_VENV/bin/pip" install -q --disable-pip-version-check \
    'localstack-core[runtime]==4.13.1' 'cbor2<5.7' 'cryptography<44' 'pyopenssl<24.3' 'service_identity<24.2'
}

install_cargo_lambda() {
  [ -x "$CARGO_LAMBDA_VENV/bin/cargo-lambda" ] && return 0
  say "installing cargo-lambda 1.9.2 into $CARGO_LAMBDA_VENV (once)"
  python3 -m venv "$CARGO_LAMBDA_VENV"
  "$CARGO_LAMBDA_VENV/bin/pip" install -q --disable-pip-version-check 'cargo-lambda==1.9.2'
}

# The version the API contract was checked with; a newer one may add checks.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV="$LOCAL/schemathesis-venv"

install_schemathesis() {
  [ -x "$SCHEMATHESIS_VENV/bin/schemathesis" ] &&
    [ "$("$SCHEMATHESIS_VENV/bin/schemathesis" --version | awk '{print $NF}')" = "$SCHEMATHESIS_VERSION" ] && return 0
  say "installing schemathesis $SCHEMATHESIS_VERSION into $SCHEMATHESIS_VENV (once)"
  python3 -m venv "$SCHEMATHESIS_VENV"
  "$SCHEMATHESIS_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}

# wrk (make bench-api) comes from the distribution: it needs root to install.
install_wrk() {
  command -v wrk >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "wrk is missing: apt-get install wrk"
  say "installing wrk (apt-get install wrk)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}

# The dashboard test (cargo xtask dashboard): Debian's chromium, which needs
# root to install, and playwright-core from the npm registry into
# tools/dashboard-test/node_modules (git-ignored), as package-lock.json pins it.
DASHBOARD_TEST_DIR="$ROOT/tools/dashboard-test"
install_dashboard_test() {
  if [ -z "${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
    [ "$(id -u)" = 0 ] || die "chromium is missing: apt-get install chromium (or set CHROMIUM to a Chromium binary)"
    say "installing Debian's chromium for the dashboard test (apt-get install chromium, once)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -f "$DASHBOARD_TEST_DIR/node_modules/.package-lock.json" ] ||
     ! cmp -s <(sed -n '/"node_modules/,$p' "$DASHBOARD_TEST_DIR/package-lock.json") \
               <(sed -n '/"node_modules/,$p' "$DASHBOARD_TEST_DIR/node_modules/.package-lock.json"); then
    say "installing playwright-core into tools/dashboard-test/node_modules (npm ci, once)"
    (cd "$DASHBOARD_TEST_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

# ---------------------------------------------------------------- services

postgres_up() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

start_postgres() {
  if postgres_up; then return 0; fi
  [ -x "$PG_BIN/initdb" ] || die "PostgreSQL 15 binaries not found in $PG_BIN (apt-get install postgresql-15), or set DATABASE_URL"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    say "creating a private PostgreSQL cluster in $PG_DATA"
    mkdir -p "$PG_DATA"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$PG_DATA"
    as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$LOGS/initdb.log"
  fi
  say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
  # A development server tuned like a small production one for bulk loads:
  # more shared buffers than the 128 MB default, and room for the WAL of a
  # big load without a checkpoint in the middle. fsync stays off: a laptop
  # database, recreated at will.
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DATA -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 \
        -c shared_buffers=1GB -c max_wal_size=8GB -c checkpoint_timeout=30min" start >/dev/null
  head -1 "$PG_DATA/postmaster.pid" >"$PIDS/postgres.pid"
  ln -sf "$PG_DATA/server.log" "$LOGS/postgres.log"
}

stop_postgres() {
  if [ -f "$PIDS/postgres.pid" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -f "$PIDS/postgres.pid"
}

localstack_up() { curl -sf "http://127.0.0.1:$LOCALSTACK_PORT/_localstack/health" >/dev/null; }

start_localstack() {
  if localstack_up; then return 0; fi
  install_localstack
  say "starting LocalStack on 127.0.0.1:$LOCALSTACK_PORT"
  (
    cd "$LOCAL"
    GATEWAY_LISTEN="127.0.0.1:$LOCALSTACK_PORT" SERVICES=s3,sqs,apigateway DNS_DISABLED=1 \
      DISABLE_EVENTS=1 PERSISTENCE=0 SKIP_SSL_CERT_DOWNLOAD=1 SQS_ENDPOINT_STRATEGY=path \
      LOCALSTACK_HOST="127.0.0.1:$LOCALSTACK_PORT" \
      setsid "$LOCALSTACK_VENV/bin/python" -m localstack.runtime.main >"$LOGS/localstack.log" 2>&1 &
    echo $! >"$PIDS/localstack.pid"
  )
  wait_for 90 LocalStack localstack_up
}

stop_pid() { # stop_pid NAME: TERM the process group, then KILL if it lingers
  local name=$1 pid
  [ -f "$PIDS/$name.pid" ] || return 0
  pid=$(cat "$PIDS/$name.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDS/$name.pid"
}

database_url() {
  if [ -n "${DATABASE_URL:-}" ]; then echo "$DATABASE_URL"; else echo "postgres://postgres@127.0.0.1:$PG_PORT/$DB_NAME"; fi
}

ensure_database() {
  [ -n "${DATABASE_URL:-}" ] && return 0
  if ! "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'" postgres | grep -q 1; then
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$DB_NAME"
  fi
}

# The HS256 secret the local API functions verify tokens with (`make token`
# signs with it). Made once, kept in .local/ (git-ignored), never printed.
jwt_secret() {
  local file="$LOCAL/jwt-secret"
  if [ ! -s "$file" ]; then
    mkdir -p "$LOCAL"
    (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$file")
  fi
  cat "$file"
}

# What every function shares. No DATABASE_URL: each function connects as
# its own user (write_function_env), so one missing its file fails at its
# cold start instead of running as the schema owner.
write_env_file() {
  mkdir -p "$LOCAL"
  (umask 077; cat >"$ENV_FILE" <<EOF
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
AWS_REGION=$AWS_REGION
BUCKET=$BUCKET
JWT_SECRET=$(jwt_secret)
RUST_LOG=${RUST_LOG:-info}
EOF
  )
}

# The database roles of migrations/V4__roles.sql, per function: each gets a
# login user (pipeline_<function>, as infra/database.yaml names them) that is
# a member of its group role, with a random password made once and kept in
# .local/ (needed when DATABASE_URL points at a server that asks for one),
# and .local/env/<function>.env with its DATABASE_URL, which `cargo lambda
# watch` reads for that function ([package.metadata.lambda.watch] in its
# Cargo.toml). Run after the migrations, which create the group roles.
FUNCTION_ROLES="ingest:order_pipeline_ingest orders:order_pipeline_orders analytics:order_pipeline_analytics"

db_password() { # db_password FUNCTION
  local file="$LOCAL/db-passwords/$1"
  if [ ! -s "$file" ]; then
    mkdir -p "$LOCAL/db-passwords"
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$file")
  fi
  cat "$file"
}

url_with_user() { # url_with_user URL USER PASSWORD
  local url=$1 scheme rest
  scheme=${url%%://*}; rest=${url#*://}
  case ${rest%%/*} in *@*) rest=${rest#*@} ;; esac
  echo "$scheme://$2:$3@$rest"
}

write_function_env() {
  local owner_url function group login password
  owner_url="$(database_url)"
  mkdir -p "$FUNCTION_ENV_DIR"
  for pair in $FUNCTION_ROLES; do
    function=${pair%%:*}; group=${pair#*:}; login="pipeline_$function"
    password="$(db_password "$function")"
    "$PG_BIN/psql" "$owner_url" -v ON_ERROR_STOP=1 -qAt -v login="$login" -v password="$password" -v grp="$group" \
      >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'login') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'login') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'login', :'password') \gexec
SELECT format('GRANT %I TO %I', :'grp', :'login') WHERE NOT pg_has_role(:'login', :'grp', 'MEMBER') \gexec
SQL
    (umask 077; echo "DATABASE_URL=$(url_with_user "$owner_url" "$login" "$password")" >"$FUNCTION_ENV_DIR/$function.env")
  done
}

# Prints a development token with every scope, signed with the secret the
# functions read from $ENV_FILE.
cmd_token() {
  { [ -f "$ENV_FILE" ] && grep -q '^JWT_SECRET=' "$ENV_FILE"; } || write_env_file
  (cd "$ROOT" && cargo build --workspace --quiet) >&2
  "$ROOT/target/debug/pipeline-local" token --env-file "$ENV_FILE"
}

pipeline_local() { "$ROOT/target/debug/pipeline-local" --bucket "$BUCKET" "$@"; }

watch_up() { curl -s -o /dev/null "http://127.0.0.1:$WATCH_PORT/"; }

start_watch() {
  if pid_alive watch; then return 0; fi
  install_cargo_lambda
  say "serving the functions with cargo lambda watch on 127.0.0.1:$WATCH_PORT"
  (
    cd "$ROOT"
    PATH="$CARGO_LAMBDA_VENV/bin:$PATH" setsid cargo lambda watch -A 127.0.0.1 -P "$WATCH_PORT" \
      --env-file "$ENV_FILE" >"$LOGS/watch.log" 2>&1 &
    echo $! >"$PIDS/watch.pid"
  )
  wait_for 60 "cargo lambda watch" watch_up
}

start_forwarder() {
  if pid_alive forwarder; then return 0; fi
  say "forwarding queue $BUCKET-ingest to the ingest function"
  ( setsid "$ROOT/target/debug/pipeline-local" --bucket "$BUCKET" forward \
      --invoke-url "http://127.0.0.1:$WATCH_PORT" >"$LOGS/forwarder.log" 2>&1 &
    echo $! >"$PIDS/forwarder.pid" )
}

# ---------------------------------------------------------------- commands

cmd_up() {
  start_postgres_unless_external
  start_localstack
  say "building the workspace"
  (cd "$ROOT" && cargo build --workspace --quiet)
  write_env_file
  say "applying migrations"
  DATABASE_URL="$(database_url)" pipeline_local migrate
  say "giving each function its own database user (.local/env/)"
  write_function_env
  say "creating bucket, queues and notification"
  pipeline_local bootstrap
  start_watch
  start_forwarder
  # Warm the HTTP function so the first user call does not wait for it.
  curl -s -o /dev/null --max-time 120 "http://127.0.0.1:$WATCH_PORT/health" || true
  if [ "${SAMPLES:-1}" != 0 ]; then
    say "uploading the sample files from data/"
    pipeline_local upload --wait "$ROOT/data/orders.csv" "$ROOT/data/barcodes.csv"
    echo
    echo "top customers: $(curl -s -H "Authorization: Bearer $(cmd_token)" \
      "http://127.0.0.1:$WATCH_PORT/analytics/top-customers?limit=5")"
  fi
  local dashboard_link
  dashboard_link="http://127.0.0.1:$WATCH_PORT/dashboard#token=$(cmd_token)"
  cat <<EOF

The order pipeline is running locally.
  dashboard   $dashboard_link
              (this link signs you in; the token stays in the browser tab)
  bucket      s3://$BUCKET  (drop CSV files into s3://$BUCKET/incoming/)
              aws --endpoint-url $AWS_ENDPOINT_URL s3 cp data/orders.csv s3://$BUCKET/incoming/
  output      aws --endpoint-url $AWS_ENDPOINT_URL s3 cp s3://$BUCKET/processed/processed_orders.csv -
  API         http://127.0.0.1:$WATCH_PORT  (docs: /docs; a token: TOKEN=\$(make -s token), then
              curl -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$WATCH_PORT/analytics/top-customers?limit=5)
  database    $(database_url)
  logs        $LOGS/ (watch.log: the functions; forwarder.log; localstack.log)
  stop        make down
EOF
}

start_postgres_unless_external() {
  if [ -z "${DATABASE_URL:-}" ]; then start_postgres; ensure_database; fi
}

cmd_down() {
  stop_pid forwarder
  stop_pid watch
  stop_pid localstack
  stop_postgres
  say "stopped"
}

# `make test`: start what is not running, run the tests, stop what we started.
STARTED_FOR_TESTS=()
stop_started_for_tests() {
  for s in "${STARTED_FOR_TESTS[@]}"; do
    case $s in postgres) stop_postgres ;; localstack) stop_pid localstack ;; esac
  done
}

cmd_test() {
  trap stop_started_for_tests EXIT
  if [ -z "${TEST_DATABASE_ADMIN_URL:-}" ]; then
    if ! postgres_up; then start_postgres; STARTED_FOR_TESTS+=(postgres); fi
    export TEST_DATABASE_ADMIN_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  fi
  if ! localstack_up; then start_localstack; STARTED_FOR_TESTS+=(localstack); fi
  cd "$ROOT"
  local status=0
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@" || status=$?
  else
    cargo test --workspace --no-fail-fast "$@" || status=$?
  fi
  # The API against its OpenAPI document, bounded (make fuzz-api runs long);
  # only for the whole suite, not a filtered run. A fixed seed keeps CI's
  # cases the same run to run.
  if [ $# -eq 0 ]; then
    say "schemathesis against the API (bounded; make fuzz-api runs the long version)"
    install_schemathesis
    FUZZ_API_EXAMPLES="${FUZZ_API_EXAMPLES:-25}" FUZZ_API_ORDERS="${FUZZ_API_ORDERS:-3000}" \
      FUZZ_API_SEED="${FUZZ_API_SEED:-1}" cargo xtask fuzz-api || status=$?
    say "the dashboard in headless Chromium"
    install_dashboard_test
    cargo xtask dashboard || status=$?
  fi
  return "$status"
}

# `make chaos`: the fault matrix (tools/chaos). It starts and stops its own
# PostgreSQL cluster (never the shared one) and uses LocalStack, started
# here when not running, with buckets and queues of its own.
cmd_chaos() {
  trap stop_started_for_tests EXIT
  if ! localstack_up; then start_localstack; STARTED_FOR_TESTS+=(localstack); fi
  cd "$ROOT"
  cargo build --workspace --quiet
  "$ROOT/target/debug/chaos" --work-dir "$LOCAL/chaos" --pg-bin "$PG_BIN" "$@"
}

cmd_services() { start_postgres_unless_external; start_localstack; }

# `stop postgres|localstack`: one service, for a task that started it alone.
cmd_stop() {
  case "${1:-}" in
    postgres) stop_postgres ;;
    localstack) stop_pid localstack ;;
    *) die "usage: $0 stop postgres|localstack" ;;
  esac
}

# Stops everything and deletes the private PostgreSQL cluster (all its data).
cmd_reset() {
  cmd_down
  if [ -d "$PG_DATA" ]; then
    rm -rf "$PG_DATA"
    say "deleted the private PostgreSQL cluster in $PG_DATA"
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  test) shift; cmd_test "$@" ;;
  chaos) shift; cmd_chaos "$@" ;;
  services) cmd_services ;;
  stop) shift; cmd_stop "$@" ;;
  reset) cmd_reset ;;
  install) install_localstack; install_cargo_lambda ;;
  install-cargo-lambda) install_cargo_lambda ;;
  install-schemathesis) install_schemathesis ;;
  install-wrk) install_wrk ;;
  install-dashboard-test) install_dashboard_test ;;
  token) cmd_token ;;
  *) echo "usage: $0 up|down|test|chaos|services|stop|reset|install|install-cargo-lambda|install-schemathesis|install-wrk|install-dashboard-test|token" >&2; exit 2 ;;
esac
