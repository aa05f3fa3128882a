#!/usr/bin/env bash
# typing: one server (SQLite; typing never touches the store), one load generator.
# args: projects members rate duration [extra server args]
set -u
B=${B:-target/release}
SECRET="${SECRET:-bench-secret-of-at-least-32-bytes-long!!}"
RUST_LOG=warn $B/vridge-realtime --data-dir ${BENCH_DIR:-/tmp/bench}/typ --jwt-secret "$SECRET" --bind 127.0.0.1:18120 \
  --no-rate-limits --max-sockets-per-user 100 --max-connections-per-ip 0 "${@:5}" > ${BENCH_DIR:-/tmp/bench}/typing-server.log 2>&1 &
PID=$!
sleep 1
$B/vridge-loadtest --no-progress --provisioning ${BENCH_DIR:-/tmp/bench}/typ.jsonl --url ws://127.0.0.1:18120 --server-pid $PID \
  typing --projects $1 --members $2 --rate $3 --duration-secs $4 | grep -vE "^\{" | tr -s ' ' | tr '\n' ';'; echo
kill $PID; wait $PID 2>/dev/null
