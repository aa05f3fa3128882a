#!/usr/bin/env bash
# resume: a fresh server on a temporary SQLite data dir (or PostgreSQL), EVENTS
# events of mixed kinds seeded into PROJECTS projects through sockets, then
# clients resuming with ?since_seq=0 until complete: first 1 client (seed and
# measure in one run), then each further client count on the same log.
# args: [events] [clients ...]      (default: 10000 1 20)
# env:  B=dir with vridge-realtime and vridge-loadtest (default: build target/release here)
#       PG_URL=postgres://postgres@127.0.0.1:5432/vridge_resume  use PostgreSQL; that
#              database is DROPPED and recreated
#       PROJECTS=1 MEMBERS=20 REPEATS=5 (resumes per client, one after another)
#       SEED_WINDOW=64 PORT=18130 SERVER_ARGS="" (e.g. "--resume-max-comments 500")
#       KEEP=1 keeps the data dir, logs and JSON summaries (else removed)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
EVENTS=${1:-10000}; shift || true
CLIENTS=("$@"); [ ${#CLIENTS[@]} -gt 0 ] || CLIENTS=(1 20)
PROJECTS=${PROJECTS:-1}; MEMBERS=${MEMBERS:-20}; REPEATS=${REPEATS:-5}
SEED_WINDOW=${SEED_WINDOW:-64}; PORT=${PORT:-18130}
SECRET="${SECRET:-bench-secret-of-at-least-32-bytes-long!!}"
if [ -z "${B:-}" ]; then
  (cd "$HERE/../.." && cargo build --release -p vridge-realtime -p vridge-loadtest --bin vridge-realtime --bin vridge-loadtest) || exit 1
  B="${CARGO_TARGET_DIR:-$HERE/../../target}/release"
fi
for bin in vridge-realtime vridge-loadtest; do
  [ -x "$B/$bin" ] || { echo "resume.sh: $B/$bin missing" >&2; exit 1; }
done
if ss -Hltn "sport = :$PORT" | grep -q .; then echo "resume.sh: port $PORT in use" >&2; exit 1; fi
D=$(mktemp -d /tmp/vridge-resume.XXXXXX)
DB=()
if [ -n "${PG_URL:-}" ]; then
  NAME=${PG_URL##*/}; ADMIN=${PG_URL%/*}/postgres
  PGOPTIONS="-c client_min_messages=warning" psql -qX "$ADMIN" -c "DROP DATABASE IF EXISTS $NAME" -c "CREATE DATABASE $NAME" || exit 1
  DB=(--database-url "$PG_URL")
fi
echo "resume: $EVENTS events x $PROJECTS project(s), clients ${CLIENTS[*]}, $REPEATS resumes each, store ${PG_URL:-sqlite $D}"
echo "machine: nproc $(nproc), load $(cut -d' ' -f1-3 /proc/loadavg)"
$B/vridge-realtime --data-dir "$D" "${DB[@]}" --jwt-secret "$SECRET" \
  provision --projects "$PROJECTS" --members "$MEMBERS" --out "$D/load.jsonl" > "$D/provision.log" 2>&1 \
  || { cat "$D/provision.log"; exit 1; }
# shellcheck disable=SC2086
RUST_LOG=warn $B/vridge-realtime --data-dir "$D" "${DB[@]}" --jwt-secret "$SECRET" --bind 127.0.0.1:$PORT \
  --no-rate-limits --max-sockets-per-user 100 --max-connections-per-ip 0 ${SERVER_ARGS:-} > "$D/server.log" 2>&1 &
PID=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/health/live" > /dev/null && break; sleep 0.2; done
LT=($B/vridge-loadtest --no-progress --provisioning "$D/load.jsonl" --url ws://127.0.0.1:$PORT --server-pid $PID)
rc=0
first=1
for c in "${CLIENTS[@]}"; do
  if [ $first = 1 ]; then seed=(--events "$EVENTS" --seed-window "$SEED_WINDOW"); first=0; else seed=(--events 0); fi
  echo "--- $c client(s), load $(cut -d' ' -f1 /proc/loadavg)"
  "${LT[@]}" resume --projects "$PROJECTS" "${seed[@]}" --clients "$c" --repeats "$REPEATS" > "$D/resume-$c.txt" 2>&1 || rc=1
  grep -vE "^\{" "$D/resume-$c.txt" | tr -s ' ' | tr '\n' ';'; echo
  grep -qE '"(resumes_mismatched|seed_projects_mismatched)":[1-9]' "$D/resume-$c.txt" && { echo "MISMATCH: see first_error above"; rc=1; }
done
kill $PID; wait $PID 2>/dev/null
grep -iE "warn|error" "$D/server.log" | head -5
if [ "${KEEP:-0}" = 1 ]; then echo "kept $D"; else rm -rf "$D"; fi
[ -z "${PG_URL:-}" ] || [ "${KEEP:-0}" = 1 ] || psql -qX "$ADMIN" -c "DROP DATABASE IF EXISTS $NAME"
exit $rc
