# The order pipeline's front door. `make up` runs it locally, `make test`
# tests it; both install what they need into .local/ (git-ignored).
SHELL := bash
.DEFAULT_GOAL := help
LOCAL_SH := scripts/local.sh
export BUCKET ?= orders

.PHONY: help up down reset test services redrive build lint fmt logs bench deploy migrate-aws token bench-api fuzz-api chaos fuzz properties

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

up: ## Start PostgreSQL, LocalStack, the functions and the forwarder; ingest data/ (SAMPLES=0 skips)
	@$(LOCAL_SH) up

down: ## Stop everything `make up` started
	@$(LOCAL_SH) down

test: ## Run unit and end-to-end tests (starts PostgreSQL and LocalStack if they are not running)
	@$(LOCAL_SH) test

properties: PROPTEST_CASES ?= 1000
properties: ## Property tests against the reference model with many cases (PROPTEST_CASES=1000; `make test` runs 16)
	@PROPTEST_CASES=$(PROPTEST_CASES) $(LOCAL_SH) test --profile properties -E 'binary(model_properties)'

reset: ## Stop everything and delete the local database (its data is lost)
	@$(LOCAL_SH) reset

services: ## Start only PostgreSQL and LocalStack
	@$(LOCAL_SH) services

redrive: ## Send dead-lettered ingest messages back to the queue (after fixing the cause)
	@cargo build --workspace --quiet && target/debug/pipeline-local --bucket $(BUCKET) redrive

build: ## Build every crate
	cargo build --workspace

lint: ## Format check, clippy, and the SAM template (cfn-lint, sam validate --lint, least privilege; offline)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	@scripts/infra.sh lint

fmt: ## Format the code
	cargo fmt --all

logs: ## Follow the local logs
	tail -F .local/logs/*.log

deploy: ## Build and deploy to AWS (sam, guided the first time; ARCH=x86_64 for Intel), then migrate (infra/README.md)
	@scripts/infra.sh deploy

migrate-aws: ## Apply the database migrations in the deployed stack (invokes its migrate function)
	@scripts/infra.sh migrate

bench: ## Time ingest vs a plain COPY floor on generated data (BENCH_ORDERS=1000000 BENCH_INCREMENT=100000 BENCH_LARGE=3000000 BENCH_BURST_FILES=20)
	@cargo xtask bench

token: ## Print a local API token with every scope: TOKEN=$$(make -s token)
	@$(LOCAL_SH) token

bench-api: ## Load generated data through ingest, serve the API locally, drive it with wrk (BENCH_API_ORDERS=1000000)
	@$(LOCAL_SH) install-wrk
	@cargo xtask bench-api

fuzz-api: ## schemathesis, every check, against the API over generated data (FUZZ_API_EXAMPLES=500 FUZZ_API_ORDERS=20000 FUZZ_API_SEED=)
	@$(LOCAL_SH) install-schemathesis
	@cargo xtask fuzz-api

chaos: ## Fault injection against the real binaries (kill -9, PostgreSQL stopped, S3 faults, sales and reads during loads); CHAOS_RUNS=10 CHAOS_SEED=… CHAOS_CASES=…
	@$(LOCAL_SH) chaos

fuzz: FUZZ_PROPTEST_CASES ?= 200
fuzz: ## Fuzz the parsers with cargo fuzz (nightly) for FUZZ_SECONDS each (180), then FUZZ_PROPTEST_CASES (200) property cases
	@scripts/fuzz.sh run
	@$(MAKE) --no-print-directory properties PROPTEST_CASES=$(FUZZ_PROPTEST_CASES)
