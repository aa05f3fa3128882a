#!/usr/bin/env bash
# Fresh server, idle run; args: sockets-projects members hold
B=${B:-target/release}
RUST_LOG=warn $B/vridge-realtime --data-dir ${BENCH_DIR:-/tmp/bench}/idle --jwt-secret "${SECRET:-bench-secret-of-at-least-32-bytes-long!!}" --bind 127.0.0.1:18080 --no-rate-limits --max-sockets-per-user 100 --max-connections-per-ip 0 > ${BENCH_DIR:-/tmp/bench}/server-idle.log 2>&1 &
PID=$!
sleep 1
$B/vridge-loadtest --no-progress --provisioning ${BENCH_DIR:-/tmp/bench}/idle.jsonl --url ws://127.0.0.1:18080 --server-pid $PID idle --projects $1 --members $2 --hold-secs $3
kill $PID; wait $PID 2>/dev/null
