#!/usr/bin/env bash
# fanout on PostgreSQL: PROJECTS x 20 members over 2 server processes (each
# below the 20,000 open-file hard limit) and 2 load-generator shards.
# args: projects rate duration [extra loadtest scenario args]
set -u
B=${B:-target/release}
SECRET="${SECRET:-bench-secret-of-at-least-32-bytes-long!!}"
PG=postgres://postgres@127.0.0.1:5432/vridge_bench
SCEN=${SCEN:-fanout}
P=$1; R=$2; D=$3; shift 3
PIDS=(); URLS=(); CLIENTS=()
for i in 0 1; do
  RUST_LOG=warn $B/vridge-realtime --data-dir ${BENCH_DIR:-/tmp/bench}/pg --database-url $PG --db-max-connections 20 --jwt-secret "$SECRET" \
    --bind 127.0.0.1:$((18081+i)) --no-rate-limits --max-sockets-per-user 100 --max-connections-per-ip 0 > ${BENCH_DIR:-/tmp/bench}/$SCEN-server-$i.log 2>&1 &
  PIDS+=($!); URLS+=(--url ws://127.0.0.1:$((18081+i)))
done
sleep 2
for s in 0 1; do
  $B/vridge-loadtest --no-progress --provisioning ${BENCH_DIR:-/tmp/bench}/pg.jsonl "${URLS[@]}" --server-pid ${PIDS[0]} --server-pid ${PIDS[1]} \
    --shard $s/2 --connect-rate 1000 $SCEN --projects $((P/2)) --members 20 --rate $R --duration-secs $D "$@" > ${BENCH_DIR:-/tmp/bench}/$SCEN-client-$s.txt 2>&1 &
  CLIENTS+=($!)
done
wait "${CLIENTS[@]}"
for s in 0 1; do grep -vE "^\{" ${BENCH_DIR:-/tmp/bench}/$SCEN-client-$s.txt | tr -s ' ' | tr '\n' ';'; echo; done
# each server's /metrics (the persister's flush times and batch sizes among them);
# named .log so that compare.sh keeps them with the run
for i in 0 1; do curl -sf http://127.0.0.1:$((18081+i))/metrics > ${BENCH_DIR:-/tmp/bench}/$SCEN-metrics-$i.log || true; done
kill "${PIDS[@]}"; wait "${PIDS[@]}" 2>/dev/null
