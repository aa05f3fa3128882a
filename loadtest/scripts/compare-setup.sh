#!/usr/bin/env bash
# One-time (re)setup of the data compare.sh runs on, as BENCHMARKS.md round 3 had it:
#   provision.sh     stores + provisioning files (tokens valid 24 h!)
#   seed-comments.sh 50 comments per project (PostgreSQL store, SQLite idle store)
# then freezes pristine copies that compare.sh restores before every run:
#   PostgreSQL database vridge_bench_seed (template of vridge_bench)
#   $GOLDEN/idle, $GOLDEN/typ (SQLite stores)
# Usage: nice -n 19 bash loadtest/scripts/compare-setup.sh BINARY_DIR (the "before" build)
# Destroys and recreates vridge_bench, vridge_bench_seed and $BENCH_DIR. 127.0.0.1 only.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:?usage: compare-setup.sh BINARY_DIR}
export B=$BIN
WORK=${WORK:-/tmp/bench-compare}
export BENCH_DIR=${BENCH_DIR:-$WORK/data}
GOLDEN=${GOLDEN:-$WORK/golden}
SCRIPTS=${SCRIPTS:-$HERE}
PSQL=(psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qX)

for p in 18080 18081 18082 18110 18111 18120; do
  if ss -Hltn "sport = :$p" | grep -q .; then echo "port $p is in use: stop that server first" >&2; exit 1; fi
done
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS vridge_bench" -c "DROP DATABASE IF EXISTS vridge_bench_seed"
rm -rf "$BENCH_DIR" "$GOLDEN"
bash "$SCRIPTS/provision.sh"          # creates vridge_bench, the stores and the .jsonl files
bash "$SCRIPTS/seed-comments.sh"
"${PSQL[@]}" -d vridge_bench -c "VACUUM ANALYZE"
sqlite3 "$BENCH_DIR/idle/vridge.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
"${PSQL[@]}" -d postgres -c "CREATE DATABASE vridge_bench_seed TEMPLATE vridge_bench"
mkdir -p "$GOLDEN"
cp -a "$BENCH_DIR/idle" "$BENCH_DIR/typ" "$GOLDEN/"
rm -rf "$BENCH_DIR/i100k" "$BENCH_DIR/i100k.jsonl"   # only idle100k.sh uses these
date -u +%s > "$BENCH_DIR/PROVISIONED_AT"
echo "setup done: $BENCH_DIR (tokens expire $(date -u -d @$(( $(cat "$BENCH_DIR/PROVISIONED_AT") + 86400 )) +%FT%TZ))"
