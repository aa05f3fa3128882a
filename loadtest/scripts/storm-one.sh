#!/usr/bin/env bash
# storm on SQLite: 10,000 sockets (1,000 projects x 10) on one server process
# and one load generator: all open, then all reconnect at once.
set -u
B=${B:-target/release}
SECRET="${SECRET:-bench-secret-of-at-least-32-bytes-long!!}"
. "$(dirname "$0")/time-wait.sh"
wait_for_time_wait
RUST_LOG=warn $B/vridge-realtime --data-dir ${BENCH_DIR:-/tmp/bench}/idle --jwt-secret "$SECRET" --bind 127.0.0.1:18080 \
  --no-rate-limits --max-sockets-per-user 100 --max-connections-per-ip 0 > ${BENCH_DIR:-/tmp/bench}/storm-one-server.log 2>&1 &
PID=$!
sleep 1.5
$B/vridge-loadtest --no-progress --provisioning ${BENCH_DIR:-/tmp/bench}/idle.jsonl --url ws://127.0.0.1:18080 --server-pid $PID \
  storm --projects 1000 --members 10 | grep -vE "^\{" | tr -s ' ' | tr '\n' ';'; echo
kill $PID; wait $PID 2>/dev/null
