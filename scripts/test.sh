#!/usr/bin/env bash
# The test command: brings up PostgreSQL and Redis if needed, then checks
# formatting and lints, and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
# The REST API against its OpenAPI document: no 5xx, no off-schema response.
bash scripts/schemathesis.sh
# The JavaScript client and the review page: Node tests and a real browser.
bash scripts/js.sh
