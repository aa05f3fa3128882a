#!/usr/bin/env bash
# idle on PostgreSQL, as production runs: a fresh server on a fresh copy of the
# seeded database (compare-setup.sh's vridge_bench_seed, 50 comments per project,
# so each socket's initial_state carries 20), N sockets held.
# On the embedded SQLite store (idle-fresh.sh) the RSS per socket also holds the
# SQLite page cache the connects fill (up to its cache_size per pooled connection,
# ~20 MB), a per-process cost that a run of 10,000 sockets spreads at ~2 KiB each.
# args: projects members hold_secs   env: B (binaries), LOADGEN, BENCH_DIR
set -u
B=${B:-target/release}
LOADGEN=${LOADGEN:-$B/vridge-loadtest}
D=${BENCH_DIR:-/tmp/bench-compare/data}
psql -h 127.0.0.1 -U postgres -qX -d postgres -v ON_ERROR_STOP=1 \
  -c "DROP DATABASE IF EXISTS vridge_bench" -c "CREATE DATABASE vridge_bench TEMPLATE vridge_bench_seed" >/dev/null
RUST_LOG=warn $B/vridge-realtime --data-dir $D/pg --database-url postgres://postgres@127.0.0.1:5432/vridge_bench \
  --jwt-secret "${SECRET:-bench-secret-of-at-least-32-bytes-long!!}" --bind 127.0.0.1:18080 --no-rate-limits \
  --max-sockets-per-user 100 --max-connections-per-ip 0 > $D/server-idle-pg.log 2>&1 &
PID=$!
sleep 1.5
$LOADGEN --no-progress --provisioning $D/pg.jsonl --url ws://127.0.0.1:18080 --server-pid $PID \
  idle --projects $1 --members $2 --hold-secs $3 ${CONNECT_RATE:+--connect-rate $CONNECT_RATE}
kill $PID; wait $PID 2>/dev/null
