#!/usr/bin/env bash
# Property-based check of the REST API against its own OpenAPI document:
# starts the debug server on a free port with a throwaway data directory,
# signs up a user (and seeds a project with a feedback item so ids resolve),
# runs schemathesis with a bounded number of examples and a time budget,
# stops the server, and fails on any 5xx or any response that breaks the
# documented schema.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'schemathesis: %s\n' "$*" >&2; }

if ! command -v schemathesis >/dev/null 2>&1; then
  say "installing schemathesis (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check 'schemathesis>=4,<5' >&2
fi

cargo build --quiet --bin vridge-realtime
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
data=$(mktemp -d)
base="http://127.0.0.1:$port"
# Quotas raised so that the fuzzer exercises the handlers, not the 429s
# (which stay documented for every route they apply to).
"${CARGO_TARGET_DIR:-target}/debug/vridge-realtime" --bind "127.0.0.1:$port" --data-dir "$data" \
  --login-attempts-per-ip 100000 --login-attempts-per-email 100000 \
  --register-attempts-per-ip 100000 --limit-rest-write 100000 --limit-comment-add 100000 \
  >"$data/server.log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -fsS "$base/health/live" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/health/live" >/dev/null || { cat "$data/server.log" >&2; exit 1; }

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
curl -fsS -X POST "$base/auth/register" -H 'content-type: application/json' \
  -d '{"email":"fuzz@example.com","password":"fuzz-password","username":"fuzzer"}' >/dev/null
token=$(curl -fsS -X POST "$base/auth/login" -H 'content-type: application/json' \
  -d '{"email":"fuzz@example.com","password":"fuzz-password"}' | json '["access_token"]')
project=$(curl -fsS -X POST "$base/projects" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"name":"Fuzzed"}' | json '["id"]')
curl -fsS -X POST "$base/feedback/$project" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"title":"Seed","timestamp":1.0}' >/dev/null

say "fuzzing $base (project $project)"
schemathesis run "$base/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-30}" \
  --max-time "${SCHEMATHESIS_MAX_SECS:-120}" \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --no-color --warnings off
