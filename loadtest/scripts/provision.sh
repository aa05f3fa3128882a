#!/usr/bin/env bash
# Provisions the stores and files the benchmark scripts use (run from the
# repository root after `cargo build --release`).
set -eu
B=${B:-target/release}
D=${BENCH_DIR:-/tmp/bench}
SECRET=${SECRET:-bench-secret-of-at-least-32-bytes-long!!}
PG=${PG:-postgres://postgres@127.0.0.1:5432/vridge_bench}
mkdir -p "$D"
psql -h 127.0.0.1 -U postgres -c "create database vridge_bench" 2>/dev/null || true
$B/vridge-realtime --data-dir "$D/idle" --jwt-secret "$SECRET" provision --projects 2000 --members 10 --out "$D/idle.jsonl"
$B/vridge-realtime --data-dir "$D/i100k" --jwt-secret "$SECRET" provision --projects 10000 --members 10 --out "$D/i100k.jsonl"
$B/vridge-realtime --data-dir "$D/typ" --jwt-secret "$SECRET" provision --projects 200 --members 100 --out "$D/typ.jsonl"
$B/vridge-realtime --data-dir "$D/pg" --database-url "$PG" --jwt-secret "$SECRET" provision --projects 1000 --members 20 --out "$D/pg.jsonl"
