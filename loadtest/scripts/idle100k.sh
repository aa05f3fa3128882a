#!/usr/bin/env bash
# 100,000 idle sockets: 6 server processes (each below the 20,000 open-file
# hard limit) on one SQLite store, 6 load-generator shards.
set -u
B=${B:-target/release}
SECRET="${SECRET:-bench-secret-of-at-least-32-bytes-long!!}"
N=6
# Connects per second per shard. At 250/s (1,500/s in all) the 12 processes
# saturate both cores while connecting and the load generators fall tens of
# seconds behind reading (pings unanswered: 4009); 100/s keeps them up.
RATE=${RATE:-100}
SETTLE=$(( 16670 / RATE + 20 ))
PIDS=(); URLS=(); CLIENTS=()
for i in $(seq 0 $((N-1))); do
  RUST_LOG=warn $B/vridge-realtime --data-dir ${BENCH_DIR:-/tmp/bench}/i100k --jwt-secret "$SECRET" --bind 127.0.0.1:$((18100+i)) \
    --no-rate-limits --max-sockets-per-user 100 --max-connections-per-ip 0 ${EXTRA:-} > ${BENCH_DIR:-/tmp/bench}/i100k-server-$i.log 2>&1 &
  PIDS+=($!); URLS+=(--url ws://127.0.0.1:$((18100+i)))
done
sleep 2
rss() { local t=0; for p in "${PIDS[@]}"; do t=$((t + $(awk '/VmRSS/{print $2}' /proc/$p/status))); done; echo $t; }
cpu() { local t=0; for p in "${PIDS[@]}"; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
echo "servers ${PIDS[*]} rss_before_kib $(rss)"
for s in $(seq 0 $((N-1))); do
  $B/vridge-loadtest --no-progress --provisioning ${BENCH_DIR:-/tmp/bench}/i100k.jsonl "${URLS[@]}" --shard $s/$N --connect-rate $RATE \
    idle --projects $((10000/N)) --members 10 --hold-secs $((SETTLE - 16670 / RATE + 60)) > ${BENCH_DIR:-/tmp/bench}/i100k-client-$s.txt 2>&1 &
  CLIENTS+=($!)
done
# Connecting takes ~16,670/RATE s per shard; the hold is measured over the 30 s after SETTLE.
for t in $(seq 1 $((SETTLE/5))); do sleep 5; echo "t=$((t*5)) est=$(ss -Htn state established '( sport >= :18100 and sport <= :18105 )' | wc -l)"; done
R1=$(rss); C1=$(cpu); T1=$(date +%s.%N)
for t in 1 2 3 4 5 6; do sleep 5; echo "t=$((SETTLE+t*5)) est=$(ss -Htn state established '( sport >= :18100 and sport <= :18105 )' | wc -l)"; done
R2=$(rss); C2=$(cpu); T2=$(date +%s.%N)
echo "rss_hold_kib $R1 $R2"
echo "server_cpu_percent_during_hold $(echo "($C2-$C1)/($T2-$T1)" | bc -l)"
echo "sockets_established $(ss -Htn state established '( sport >= :18100 and sport <= :18105 )' | wc -l)"
wait "${CLIENTS[@]}"
for s in $(seq 0 $((N-1))); do grep -E "^(opened|failed|dropped|cause|client_cpu_at_rest|client_rss)" ${BENCH_DIR:-/tmp/bench}/i100k-client-$s.txt | tr '\n' ' '; echo; done
# Keepalive as each server saw it: pings written, pongs read (and how late), 4009 closes.
for i in $(seq 0 $((N-1))); do
  curl -s http://127.0.0.1:$((18100+i))/metrics | grep -E "^vridge_(pings_sent|pongs_received|keepalive_closes)_total|^vridge_pong_seconds_(bucket|count)" | tr '\n' ' '; echo
done
kill "${PIDS[@]}"
