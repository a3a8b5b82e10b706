# Sourced by the scripts here: the checkout, its git-ignored .local/ (where
# every tool is installed), the cargo-lambda both local.sh and infra.sh use,
# and how the scripts talk.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
CARGO_LAMBDA_VENV="$LOCAL/cargo-lambda-venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
