#!/usr/bin/env bash
# AWS deployment tooling, driven by the Makefile: installs the AWS SAM CLI and
# cfn-lint (pinned, from PyPI) into .local/infra-venv, lints the template
# offline, builds the functions with cargo-lambda, deploys the stack and
# applies the migrations in AWS. See infra/README.md.
set -euo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
INFRA="$ROOT/infra"
VENV="$LOCAL/infra-venv"
SAM_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
# No usage data leaves the machine; linting needs a region name, not AWS.
export SAM_CLI_TELEMETRY=0

install_tools() {
  local pins="$SAM_VERSION $CFN_LINT_VERSION"
  if [ -x "$VENV/bin/sam" ] && [ -x "$VENV/bin/cfn-lint" ] && [ "$(cat "$VENV/.pins" 2>/dev/null)" = "$pins" ]; then
    return 0
  fi
  say "installing AWS SAM CLI $SAM_VERSION and cfn-lint $CFN_LINT_VERSION into $VENV (about a minute, once)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    "aws-sam-cli==$SAM_VERSION" "cfn-lint==$CFN_LINT_VERSION"
  echo "$pins" >"$VENV/.pins"
}

# `make lint`: offline, no AWS credentials needed.
cmd_lint() {
  install_tools
  say "cfn-lint infra/template.yaml infra/database.yaml"
  (cd "$INFRA" && AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" \
    "$VENV/bin/cfn-lint" template.yaml database.yaml)
  say "sam validate --lint"
  (cd "$INFRA" && AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" \
    "$VENV/bin/sam" validate --lint --template template.yaml)
  say "least-privilege promises (tools/infracheck)"
  (cd "$ROOT" && cargo build --workspace --quiet && target/debug/infracheck infra/template.yaml)
}

# A value of the deploy configuration `sam deploy --guided` saved, or nothing.
saved_setting() { "$VENV/bin/python" "$INFRA/deploy.py" setting "$1"; }

# The architecture to build: ARCH, else the one the stack was deployed with,
# else the template's default (arm64).
build_architecture() {
  local saved
  if [ -n "${ARCH:-}" ]; then echo "$ARCH"; return; fi
  saved="$(saved_setting Architecture)"
  echo "${saved:-arm64}"
}

cmd_build() {
  install_tools
  "$ROOT/scripts/local.sh" install-cargo-lambda
  local arch
  arch="$(build_architecture)"
  case "$arch" in
    arm64)
      rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu \
        || die "building for arm64 needs the Rust target: rustup target add aarch64-unknown-linux-gnu (or ARCH=x86_64 make deploy)" ;;
    x86_64) ;;
    *) die "ARCH=$arch: use arm64 or x86_64" ;;
  esac
  say "sam build for $arch (a release build of the workspace: minutes the first time)"
  (cd "$INFRA" && PATH="$CARGO_LAMBDA_VENV/bin:$PATH" \
    "$VENV/bin/sam" build --beta-features "$@" --parameter-overrides "Architecture=$arch")
  echo "$arch" >"$INFRA/.aws-sam/architecture"
}

cmd_deploy() {
  cmd_build
  local arch
  arch="$(cat "$INFRA/.aws-sam/architecture")"
  if [ ! -f "$INFRA/samconfig.toml" ]; then
    say "first deploy: sam deploy --guided (answers are saved to infra/samconfig.toml)"
    (cd "$INFRA" && "$VENV/bin/sam" deploy --guided --capabilities CAPABILITY_IAM \
      --parameter-overrides "Architecture=$arch")
    [ "$(saved_setting Architecture)" = "$arch" ] \
      || die "the stack was configured for another architecture than the $arch build: run make deploy again to rebuild and redeploy"
  else
    [ "$(saved_setting Architecture)" = "$arch" ] \
      || die "built for $arch but infra/samconfig.toml deploys Architecture=$(saved_setting Architecture): edit it or drop ARCH"
    (cd "$INFRA" && "$VENV/bin/sam" deploy)
  fi
  cmd_migrate
}

# Applies the migrations in AWS by invoking the stack's migrate function.
cmd_migrate() {
  install_tools
  [ -f "$INFRA/samconfig.toml" ] || die "no infra/samconfig.toml: deploy first with make deploy"
  say "applying the database migrations (the migrate function)"
  "$VENV/bin/python" "$INFRA/deploy.py" migrate
}

case "${1:-}" in
  tools) install_tools ;;
  lint) cmd_lint ;;
  build) shift; cmd_build "$@" ;;
  deploy) cmd_deploy ;;
  migrate) cmd_migrate ;;
  *) echo "usage: $0 tools|lint|build|deploy|migrate" >&2; exit 2 ;;
esac
