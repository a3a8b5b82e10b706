#!/usr/bin/env bash
# Coverage-guided fuzzing of the pipeline's input parsers (the targets in
# fuzz/, libFuzzer through cargo fuzz), then a table: target, seconds,
# executions, crashes. The Makefile is the front door:
#
#   make fuzz                  each target for FUZZ_SECONDS (default 180)
#   scripts/fuzz.sh smoke      each target for FUZZ_SMOKE_SECONDS (default 20; CI)
#   scripts/fuzz.sh build      build the targets only
#   scripts/fuzz.sh run csv_rows bearer     some targets only
#
# cargo fuzz needs a nightly toolchain; without one the targets are only
# compiled (stable, no instrumentation) and nothing runs. Each target's
# seed corpus is fuzz/corpus/<target>/ (committed); what the fuzzer adds
# goes to .local/fuzz/corpus/<target>/, the build to .local/fuzz/target/,
# the logs to .local/fuzz/logs/ and a crashing input to
# fuzz/artifacts/<target>/ (all git-ignored). A crash becomes a regression
# test in the normal suite, its input committed in fuzz/regressions/<target>/
# and added to the seed corpus.
set -euo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
FUZZ_DIR="$ROOT/fuzz"
WORK="$LOCAL/fuzz"
# The instrumented build, apart from the main workspace's target/.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$WORK/target}"
CARGO_FUZZ_VERSION=0.13.2
CARGO_FUZZ_ROOT="$LOCAL/cargo-fuzz"
TARGETS=(csv_rows s3_events cursor bearer processed_roundtrip)

# No sanitizer: everything fuzzed is safe Rust (the pipeline's crates hold
# no `unsafe`), so AddressSanitizer would find nothing Rust's own checks do
# not, while it doubles the build and slows every run. Memory is bounded
# by the csv_rows target's own count and by libFuzzer's limits below.
SANITIZER=none
# libFuzzer's limits, per target: the whole process, and any one allocation.
RSS_LIMIT_MB=1024
MALLOC_LIMIT_MB=256
# An input that takes longer than this is reported as a hang.
TIMEOUT_SECONDS=10

has_nightly() { rustup toolchain list 2>/dev/null | grep -q '^nightly'; }

install_cargo_fuzz() {
  [ -x "$CARGO_FUZZ_ROOT/bin/cargo-fuzz" ] && return 0
  say "installing cargo-fuzz $CARGO_FUZZ_VERSION into $CARGO_FUZZ_ROOT (about a minute, once)"
  cargo install --quiet --locked --root "$CARGO_FUZZ_ROOT" --version "$CARGO_FUZZ_VERSION" cargo-fuzz
}

# cargo fuzz with nightly, from the root (it finds fuzz/ there), with debug
# assertions on: an arithmetic overflow is a crash, not a silent wrap.
cargo_fuzz() { # cargo_fuzz build|run ARGS...
  local command=$1; shift
  (cd "$ROOT" && PATH="$CARGO_FUZZ_ROOT/bin:$PATH" cargo +nightly fuzz "$command" \
    --sanitizer "$SANITIZER" --debug-assertions "$@")
}

# Builds the targets instrumented; without nightly compiles them plainly
# and returns 1 (callers decide whether that is enough). A cold build takes
# about 8 CPU-minutes (the shared crate's dependencies; 13.5 before
# fuzz/Cargo.toml left those never run unoptimised), cargo-fuzz's install
# about 1; after that a change rebuilds in a minute.
build() {
  if ! has_nightly; then
    say "no nightly toolchain (rustup toolchain list): cargo fuzz cannot instrument the targets;" \
      "compiling them without instrumentation only, nothing is fuzzed"
    cargo build --locked --manifest-path "$FUZZ_DIR/Cargo.toml" --bins ||
      die "the fuzz targets do not compile"
    return 1
  fi
  install_cargo_fuzz
  say "building the fuzz targets (nightly, sanitizer $SANITIZER)"
  cargo_fuzz build || die "the fuzz targets do not build"
}

# Extra libFuzzer options per target: the CSV reader gets inputs long
# enough to break every limit of its tiny configuration several times.
max_len() {
  case $1 in
    csv_rows) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

# run_target TARGET SECONDS: fuzzes one target, appends its row to $RESULTS.
run_target() {
  local target=$1 seconds=$2 log="$WORK/logs/$1.log" artifacts="$FUZZ_DIR/artifacts/$1"
  mkdir -p "$WORK/corpus/$target" "$WORK/logs" "$artifacts"
  local crashes_before
  crashes_before=$(find "$artifacts" -type f | wc -l)
  say "fuzzing $target for ${seconds}s (log: ${log#"$ROOT/"})"
  local status=0 started=$SECONDS
  cargo_fuzz run "$target" \
    "$WORK/corpus/$target" "$FUZZ_DIR/corpus/$target" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout="$TIMEOUT_SECONDS" \
    -rss_limit_mb="$RSS_LIMIT_MB" -malloc_limit_mb="$MALLOC_LIMIT_MB" \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  local executions elapsed crashes
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # libFuzzer's own count when it finished, else (a crash) the wall time.
  elapsed=$(sed -n 's/.*Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  elapsed=${elapsed:-$((SECONDS - started))}
  crashes=$(($(find "$artifacts" -type f | wc -l) - crashes_before))
  if [ "$status" != 0 ] && [ "$crashes" = 0 ]; then
    crashes="failed"
    tail -20 "$log" >&2
  elif [ "$crashes" != 0 ]; then
    grep -m1 -A3 -E 'panicked at|ERROR: libFuzzer' "$log" >&2 || true
    say "$target: crashing input(s) in ${artifacts#"$ROOT/"}/"
  fi
  printf '%-20s %8s %12s %8s\n' "$target" "$elapsed" "${executions:-?}" "$crashes" >>"$RESULTS"
}

fuzz_all() { # fuzz_all SECONDS [TARGET...]
  local seconds=$1; shift
  local targets=("$@")
  [ ${#targets[@]} -gt 0 ] || targets=("${TARGETS[@]}")
  build || die "no nightly toolchain: the fuzz targets were compiled but not run"
  run_all "$seconds" "${targets[@]}"
}

# CI: fuzzes briefly where nightly is installed, else only compiles.
smoke() {
  build || { say "the fuzz targets compiled; without nightly they were not run"; return 0; }
  run_all "${FUZZ_SMOKE_SECONDS:-20}" "${TARGETS[@]}"
}

run_all() { # run_all SECONDS TARGET...
  local seconds=$1; shift
  local targets=("$@")
  RESULTS=$(mktemp)
  for target in "${targets[@]}"; do
    run_target "$target" "$seconds"
  done
  printf '\n%-20s %8s %12s %8s\n' target seconds executions crashes
  cat "$RESULTS"
  local failed
  failed=$(awk '$4 != "0"' "$RESULTS" | wc -l)
  rm -f "$RESULTS"
  [ "$failed" = 0 ] || die "$failed target(s) crashed or failed; see the logs in ${WORK#"$ROOT/"}/logs/"
}

command=${1:-run}
[ $# -gt 0 ] && shift
case $command in
  run) fuzz_all "${FUZZ_SECONDS:-180}" "$@" ;;
  smoke) smoke ;;
  build) build || true ;;
  *) die "unknown command '$command'; use run, smoke or build" ;;
esac
