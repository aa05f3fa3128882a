#!/usr/bin/env bash
# storm on PostgreSQL: 20,000 sockets (1,000 projects x 20) over 2 server processes and 2
# load-generator shards that storm at the same wall-clock second. Each shard
# spreads its sockets over 8 source addresses (SOURCES): on one, the kernel's
# free-port search in bind() took most of the load generator's CPU.
set -u
B=${B:-target/release}
SECRET="${SECRET:-bench-secret-of-at-least-32-bytes-long!!}"
. "$(dirname "$0")/time-wait.sh"
wait_for_time_wait
PIDS=(); URLS=(); CLIENTS=()
for i in 0 1; do
  RUST_LOG=warn $B/vridge-realtime --data-dir ${BENCH_DIR:-/tmp/bench}/pg --database-url postgres://postgres@127.0.0.1:5432/vridge_bench --db-max-connections 20 --jwt-secret "$SECRET" --bind 127.0.0.1:$((18110+i)) \
    --no-rate-limits --max-sockets-per-user 100 --max-connections-per-ip 0 > ${BENCH_DIR:-/tmp/bench}/storm-server-$i.log 2>&1 &
  PIDS+=($!); URLS+=(--url ws://127.0.0.1:$((18110+i)))
done
sleep 2
AT=$(( $(date +%s) + 30 ))
for s in 0 1; do
  $B/vridge-loadtest --no-progress --provisioning ${BENCH_DIR:-/tmp/bench}/pg.jsonl "${URLS[@]}" --server-pid ${PIDS[0]} --server-pid ${PIDS[1]} \
    --shard $s/2 --source-addrs ${SOURCES:-8} --connect-rate 1000 storm --projects 500 --members 20 --at-unix-secs $AT > ${BENCH_DIR:-/tmp/bench}/storm-client-$s.txt 2>&1 &
  CLIENTS+=($!)
done
wait "${CLIENTS[@]}"
for s in 0 1; do grep -vE "^\{" ${BENCH_DIR:-/tmp/bench}/storm-client-$s.txt | tr -s ' ' | tr '\n' ';'; echo; done
kill "${PIDS[@]}"; wait "${PIDS[@]}" 2>/dev/null
