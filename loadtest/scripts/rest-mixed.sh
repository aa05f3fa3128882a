#!/usr/bin/env bash
# REST history while the same projects take comments: GET a page of 50 at RATE/s
# on 100 projects from one server on PostgreSQL, while WRATE comments/s go into
# each of those projects (2 members each), so kept pages keep going stale.
# Needs compare-setup.sh's data (restores vridge_bench from vridge_bench_seed first).
# args: RATE SECS WRATE   env: B (server binaries), LOADGEN (load generator), BENCH_DIR
set -u
B=${B:-target/release}
LOADGEN=${LOADGEN:-$B/vridge-loadtest}
D=${BENCH_DIR:-/tmp/bench-compare/data}
SECRET="${SECRET:-bench-secret-of-at-least-32-bytes-long!!}"
RATE=$1; SECS=$2; WRATE=$3
psql -h 127.0.0.1 -U postgres -qX -d postgres -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS vridge_bench" -c "CREATE DATABASE vridge_bench TEMPLATE vridge_bench_seed" >/dev/null
RUST_LOG=warn $B/vridge-realtime --data-dir $D/pg --database-url postgres://postgres@127.0.0.1:5432/vridge_bench \
  --jwt-secret "$SECRET" --bind 127.0.0.1:18151 --no-rate-limits --max-connections-per-ip 0 > $D/rest-mixed-server.log 2>&1 &
PID=$!
sleep 1.5
$LOADGEN --no-progress --provisioning $D/pg.jsonl --url ws://127.0.0.1:18151 \
  fanout --projects 100 --members 2 --rate "$WRATE" --duration-secs $((SECS + 4)) --grace-secs 1 > $D/rest-mixed-fanout.log 2>&1 &
WRITER=$!
sleep 3
$LOADGEN --no-progress --provisioning $D/pg.jsonl --url ws://127.0.0.1:18151 --server-pid $PID \
  rest --projects 100 --path "/projects/{project_id}/comments?since=0&limit=50" --rate "$RATE" --duration-secs "$SECS" \
  | grep -vE "^\{" | tr -s ' ' | tr '\n' ';'; echo
wait $WRITER
echo "writer: $(grep -E "sent|lost|p99" $D/rest-mixed-fanout.log | tr -s ' ' | tr '\n' ';')"
curl -s 127.0.0.1:18151/metrics | grep -E "^vridge_history_pages" | tr '\n' ' '; echo
kill $PID; wait $PID 2>/dev/null
