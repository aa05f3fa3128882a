#!/usr/bin/env bash
# rest on PostgreSQL: GET a history page (50 comments) at a fixed rate from one
# server process. args: rate duration_secs [path template]
set -u
B=${B:-target/release}
SECRET="${SECRET:-bench-secret-of-at-least-32-bytes-long!!}"
RATE=$1; SECS=$2
RPATH=${3:-"/projects/{project_id}/comments?since=0&limit=50"}
RUST_LOG=warn $B/vridge-realtime --data-dir ${BENCH_DIR:-/tmp/bench}/pg --database-url postgres://postgres@127.0.0.1:5432/vridge_bench \
  --jwt-secret "$SECRET" --bind 127.0.0.1:18151 --no-rate-limits --max-connections-per-ip 0 > ${BENCH_DIR:-/tmp/bench}/rest-server.log 2>&1 &
PID=$!
sleep 1.5
$B/vridge-loadtest --no-progress --provisioning ${BENCH_DIR:-/tmp/bench}/pg.jsonl --url ws://127.0.0.1:18151 --server-pid $PID \
  rest --projects 100 --path "$RPATH" --rate "$RATE" --duration-secs "$SECS" | grep -vE "^\{" | tr -s ' ' | tr '\n' ';'; echo
kill $PID; wait $PID 2>/dev/null
