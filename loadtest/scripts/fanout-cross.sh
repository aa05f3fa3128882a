#!/usr/bin/env bash
# fanout across nodes, on PostgreSQL + Redis: PROJECTS x 20 members spread
# over 2 server processes sharing Redis (--spread-members: member by user id,
# so about half of each project's readers are on the other node than its
# sender), driven by 2 load-generator shards. Reports latency same-node and
# cross-node separately (latency_same_node_* / latency_cross_node_*).
# args: projects rate duration [extra loadtest scenario args]
# env: B (binaries), REDIS (default redis://127.0.0.1:6379/2: its own logical
#      database; FLUSHDB'd first), BENCH_DIR, SECRET.
set -u
B=${B:-target/release}
SECRET="${SECRET:-bench-secret-of-at-least-32-bytes-long!!}"
PG=postgres://postgres@127.0.0.1:5432/vridge_bench
REDIS=${REDIS:-redis://127.0.0.1:6379/2}
P=$1; R=$2; D=$3; shift 3
redis-cli -u "$REDIS" FLUSHDB > /dev/null
PIDS=(); URLS=(); CLIENTS=()
for i in 0 1; do
  RUST_LOG=warn $B/vridge-realtime --data-dir ${BENCH_DIR:-/tmp/bench}/pg --database-url $PG --db-max-connections 20 --jwt-secret "$SECRET" \
    --redis-url "$REDIS" --bind 127.0.0.1:$((18081+i)) --no-rate-limits --max-sockets-per-user 100 --max-connections-per-ip 0 \
    > ${BENCH_DIR:-/tmp/bench}/cross-server-$i.log 2>&1 &
  PIDS+=($!); URLS+=(--url ws://127.0.0.1:$((18081+i)))
done
sleep 2
for s in 0 1; do
  $B/vridge-loadtest --no-progress --provisioning ${BENCH_DIR:-/tmp/bench}/pg.jsonl "${URLS[@]}" --spread-members \
    --server-pid ${PIDS[0]} --server-pid ${PIDS[1]} --shard $s/2 --connect-rate 1000 \
    fanout --projects $((P/2)) --members 20 --rate $R --duration-secs $D "$@" > ${BENCH_DIR:-/tmp/bench}/cross-client-$s.txt 2>&1 &
  CLIENTS+=($!)
done
wait "${CLIENTS[@]}"
for s in 0 1; do grep -vE "^\{" ${BENCH_DIR:-/tmp/bench}/cross-client-$s.txt | tr -s ' ' | tr '\n' ';'; echo; done
kill "${PIDS[@]}"; wait "${PIDS[@]}" 2>/dev/null
