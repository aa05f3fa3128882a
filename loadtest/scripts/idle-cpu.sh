#!/usr/bin/env bash
# CPU at rest of one server holding idle sockets: a fresh server on the SQLite idle store,
# PROJECTS x 10 sockets connected at 1,000/s, then the server's CPU (utime+stime from
# /proc, user and system apart, and per ping sent) over a window of WINDOW seconds once all
# are connected; with PERF=1 the window is
# recorded by `perf record -g` into $BENCH_DIR/idle-cpu.perf.data instead of slept through.
# args: projects hold_secs window_secs [extra server args]
set -u
B=${B:-target/release}
D=${BENCH_DIR:-/tmp/bench}
P=$1; H=$2; W=$3; shift 3
RUST_LOG=warn $B/vridge-realtime --data-dir $D/idle --jwt-secret "${SECRET:-bench-secret-of-at-least-32-bytes-long!!}" --bind 127.0.0.1:18080 \
  --no-rate-limits --max-sockets-per-user 100 --max-connections-per-ip 0 "$@" > $D/server-idle-cpu.log 2>&1 &
PID=$!
sleep 1
$B/vridge-loadtest --no-progress --provisioning $D/idle.jsonl --url ws://127.0.0.1:18080 --server-pid $PID --connect-rate 1000 \
  idle --projects $P --members 10 --hold-secs $H > $D/idle-cpu-client.txt 2>&1 &
LG=$!
sleep $(( P * 10 / 1000 + 8 ))
echo "established $(ss -Htn state established '( sport = :18080 )' | wc -l)"
pings() { curl -s http://127.0.0.1:18080/metrics | awk '/^vridge_pings_sent_total/ {print $2}'; }
P1=$(pings); read -r U1 S1 < <(awk '{print $14, $15}' /proc/$PID/stat); T1=$(date +%s.%N)
if [ -n "${PERF:-}" ]; then perf record -F 999 -g -p $PID -o $D/idle-cpu.perf.data -- sleep $W >/dev/null 2>&1; else sleep $W; fi
read -r U2 S2 < <(awk '{print $14, $15}' /proc/$PID/stat); T2=$(date +%s.%N); P2=$(pings)
# utime and stime are in clock ticks (USER_HZ, 100/s): ticks / seconds = percent of one core;
# user is the server's own code, system the kernel's work on its behalf (on loopback that
# includes the receiving side's TCP input).
echo "server_cpu_percent_during_window $(echo "($U2+$S2-$U1-$S1)/($T2-$T1)" | bc -l)"
echo "server_cpu_user_percent $(echo "($U2-$U1)/($T2-$T1)" | bc -l)"
echo "server_cpu_system_percent $(echo "($S2-$S1)/($T2-$T1)" | bc -l)"
echo "pings_per_sec $(echo "($P2-$P1)/($T2-$T1)" | bc -l)"
[ "$P2" -gt "$P1" ] && echo "server_cpu_us_per_ping $(echo "($U2+$S2-$U1-$S1)*10000/($P2-$P1)" | bc -l)"
curl -s http://127.0.0.1:18080/metrics | grep -E "^vridge_(pings_sent|pongs_received|keepalive_closes)_total"
wait $LG; kill $PID; wait $PID 2>/dev/null
grep -E "^(opened|failed|dropped|server_rss_per_socket_kib)" $D/idle-cpu-client.txt
