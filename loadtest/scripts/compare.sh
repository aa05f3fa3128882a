#!/usr/bin/env bash
# Before/after comparison of two builds of vridge-realtime on four scenarios, run the way
# BENCHMARKS.md round 3 (and the idle re-measure of issue 10) ran them: the same data for
# both binaries, runs alternating A, B, A, B, ..., each started after the previous run's
# TIME_WAIT sockets drained, on a fresh copy of the seeded stores.
#
# Usage:  nice -n 19 bash compare.sh DIR_A DIR_B [scenario ...]
#   DIR_A, DIR_B  directories holding vridge-realtime and vridge-loadtest
#   scenarios     idle fanout storm typing (default: all four, in that order)
# Environment (defaults = BENCHMARKS.md):
#   ROUNDS=2                  A,B pairs per scenario
#   IDLE_ARGS="1000 10 10"    idle-fresh.sh: projects members hold_secs (10,000 sockets, 1 server)
#   FANOUT_ARGS="1000 2 60"   fanout.sh: projects rate duration (1,000 x 20, 2 + 2 processes, PostgreSQL)
#   TYPING_ARGS="100 100 13 20" typing.sh: projects members rate duration (128,700 deliveries/s)
#   storm.sh takes no arguments (20,000 sockets, 2 + 2 processes, PostgreSQL)
#   LOADGEN=path              one vridge-loadtest for both sides (default: each dir's own)
#   QUIET_CPU=25 QUIET_MAX_WAIT=0  before each run wait up to QUIET_MAX_WAIT s for the
#                             machine's busy CPU (5 s sample, % of all cores) to fall below QUIET_CPU;
#                             runs started above it are marked "*" in the table either way
#   DRAIN_MAX=240             most seconds to wait for TIME_WAIT <= 100 before a run
#   MAX_TOTAL_SECS=3600       no run starts after this many seconds (bounded in time)
#   OUT=$WORK/results/<timestamp>   where logs, results.tsv and summary.txt go
#   WORK=/tmp/bench-compare   data, pristine copies and results (set up by compare-setup.sh)
#   SCRIPTS=this directory    the scenario scripts (point it at a frozen copy to pin the method)
# Only 127.0.0.1 is used (servers bind 127.0.0.1, PostgreSQL at 127.0.0.1:5432).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { sed -n '2,25p' "$0"; exit 2; }
DIR_A=$(cd "$1" && pwd) || exit 2
DIR_B=$(cd "$2" && pwd) || exit 2
shift 2
SCENARIOS=("$@"); [ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(idle fanout storm typing)
ROUNDS=${ROUNDS:-2}
IDLE_ARGS=${IDLE_ARGS:-"1000 10 10"}
FANOUT_ARGS=${FANOUT_ARGS:-"1000 2 60"}
TYPING_ARGS=${TYPING_ARGS:-"100 100 13 20"}
QUIET_CPU=${QUIET_CPU:-25}
QUIET_MAX_WAIT=${QUIET_MAX_WAIT:-0}
DRAIN_MAX=${DRAIN_MAX:-240}
MAX_TOTAL_SECS=${MAX_TOTAL_SECS:-3600}
# The scenario scripts: these, unless SCRIPTS names a frozen copy (so that
# both sides of a comparison run the same method whatever the checkout holds).
SCRIPTS=${SCRIPTS:-$HERE}
WORK=${WORK:-/tmp/bench-compare}
export BENCH_DIR=${BENCH_DIR:-$WORK/data}
GOLDEN=${GOLDEN:-$WORK/golden}
OUT=${OUT:-$WORK/results/$(date -u +%Y%m%dT%H%M%SZ)}
PORTS=(18080 18081 18082 18110 18111 18120)
PSQL=(psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qX -d postgres)
T0=$(date +%s)

die() { echo "compare.sh: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S) +$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/progress.log"; }

# ---------- preflight ----------
for s in "${SCENARIOS[@]}"; do case $s in idle|fanout|storm|typing) ;; *) die "unknown scenario $s";; esac; done
for d in "$DIR_A" "$DIR_B"; do
  [ -x "$d/vridge-realtime" ] || die "$d/vridge-realtime missing"
  [ -n "${LOADGEN:-}" ] || [ -x "$d/vridge-loadtest" ] || die "$d/vridge-loadtest missing"
done
[ -z "${LOADGEN:-}" ] || [ -x "$LOADGEN" ] || die "LOADGEN=$LOADGEN is not executable"
for f in "$SCRIPTS"/{idle-fresh,fanout,storm,typing,time-wait}.sh; do [ -f "$f" ] || die "$f missing"; done
mkdir -p "$OUT" || die "cannot create $OUT"
for p in "${PORTS[@]}"; do ss -Hltn "sport = :$p" | grep -q . && die "port $p already in use (a server left running?)"; done
"${PSQL[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'vridge_bench_seed'" | grep -q 1 \
  || die "PostgreSQL template vridge_bench_seed missing: run compare-setup.sh first"
[ -d "$GOLDEN/idle" ] && [ -d "$GOLDEN/typ" ] || die "$GOLDEN/{idle,typ} missing: run compare-setup.sh first"
# Provisioned tokens live 86,400 s; re-provision (7 s) if they could lapse during this run.
if [ ! -f "$BENCH_DIR/PROVISIONED_AT" ] || [ $(( $(cat "$BENCH_DIR/PROVISIONED_AT") + 86400 - MAX_TOTAL_SECS - 600 )) -lt "$(date +%s)" ]; then
  log "provisioned tokens missing or expiring: re-running compare-setup.sh with $DIR_A"
  bash "$HERE/compare-setup.sh" "$DIR_A" > "$OUT/setup.log" 2>&1 || die "compare-setup.sh failed, see $OUT/setup.log"
fi
[ "$(sysctl -n net.core.somaxconn)" -ge 65535 ] \
  || echo "WARNING: net.core.somaxconn=$(sysctl -n net.core.somaxconn); BENCHMARKS.md ran with 65535 (sysctl -w net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535)" | tee -a "$OUT/progress.log"

# Per-side bin dirs: the side's server, and its own load generator or LOADGEN for both.
for side in A B; do
  d=DIR_$side; mkdir -p "$OUT/bin-$side"
  ln -sf "${!d}/vridge-realtime" "$OUT/bin-$side/vridge-realtime"
  ln -sf "${LOADGEN:-${!d}/vridge-loadtest}" "$OUT/bin-$side/vridge-loadtest"
done
{
  echo "date_utc $(date -u +%FT%TZ)  host $(hostname)  nproc $(nproc)  kernel $(uname -r)"
  echo "A $DIR_A  server sha256 $(sha256sum < "$DIR_A/vridge-realtime" | cut -c1-16)  loadtest $(sha256sum < "$OUT/bin-A/vridge-loadtest" | cut -c1-16)"
  echo "B $DIR_B  server sha256 $(sha256sum < "$DIR_B/vridge-realtime" | cut -c1-16)  loadtest $(sha256sum < "$OUT/bin-B/vridge-loadtest" | cut -c1-16)"
  echo "scenarios ${SCENARIOS[*]}  rounds $ROUNDS  idle '$IDLE_ARGS'  fanout '$FANOUT_ARGS'  typing '$TYPING_ARGS'  storm (script defaults)"
  echo "nice $(nice)  somaxconn $(sysctl -n net.core.somaxconn)  ulimit -Hn $(ulimit -Hn)"
} > "$OUT/conditions.txt"
cat "$OUT/conditions.txt" | tee -a "$OUT/progress.log"

# ---------- helpers ----------
cpu_busy() {  # busy % of all cores over $1 seconds
  local a b; a=($(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)); sleep "$1"
  b=($(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat))
  awk -v b=$(( b[0] - a[0] )) -v i=$(( b[1] - a[1] )) 'BEGIN{ printf "%.0f", (b + i) ? 100 * b / (b + i) : 0 }'
}
jiffies() {  # machine busy, machine total, this shell's reaped children (the runs), PostgreSQL (clock ticks)
  local m o g
  m=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
  o=$(awk '{print $(NF-36)+$(NF-35)}' /proc/$$/stat)            # cutime + cstime
  g=$(awk '$2 == "(postgres)" {s += $14 + $15 + $16 + $17} END {print s + 0}' /proc/[0-9]*/stat 2>/dev/null)
  echo "$m $o $g"
}
drain() {  # bounded wait_for_time_wait
  local t=0
  while [ "$(ss -Htan state time-wait | wc -l)" -gt 100 ]; do
    [ $t -ge "$DRAIN_MAX" ] && { log "TIME_WAIT still $(ss -Htan state time-wait | wc -l) after ${DRAIN_MAX}s; starting anyway"; return; }
    sleep 5; t=$((t + 5))
  done
}
ports_free() {  # wait up to 20 s for our ports to be released; never kill what we did not start
  local t=0
  while :; do
    local busy=0; for p in "${PORTS[@]}"; do ss -Hltn "sport = :$p" | grep -q . && busy=1; done
    [ $busy = 0 ] && return 0
    [ $t -ge 20 ] && return 1
    sleep 1; t=$((t + 1))
  done
}
restore() {  # fresh copy of the seeded stores (runs also migrate them, if a side has new migrations)
  case $1 in
    fanout|storm) "${PSQL[@]}" -c "DROP DATABASE IF EXISTS vridge_bench" -c "CREATE DATABASE vridge_bench TEMPLATE vridge_bench_seed" ;;
    idle) rm -rf "$BENCH_DIR/idle" && cp -a "$GOLDEN/idle" "$BENCH_DIR/idle" ;;
    typing) rm -rf "$BENCH_DIR/typ" && cp -a "$GOLDEN/typ" "$BENCH_DIR/typ" ;;
  esac
}
run_limit() {  # seconds a scenario run may take before it is killed
  case $1 in
    idle) set -- $IDLE_ARGS; echo $(( $1 * $2 / 200 + $3 + 90 )) ;;   # connect at >= 200/s
    fanout) set -- $FANOUT_ARGS; echo $(( $3 + 150 )) ;;
    storm) echo 180 ;;
    typing) set -- $TYPING_ARGS; echo $(( $4 + 120 )) ;;
  esac
}
run_one() {  # scenario side round
  local scen=$1 side=$2 round=$3 dir="$OUT/runs/$1-r$3-$2" limit rc start
  mkdir -p "$dir"
  drain
  restore "$scen" > "$dir/restore.log" 2>&1 || { log "$scen $side r$round: restore failed"; echo "$scen $side $round FAILED restore" >> "$OUT/failures"; return; }
  local busy waited=0
  busy=$(cpu_busy 5)
  while [ "$busy" -gt "$QUIET_CPU" ] && [ $waited -lt "$QUIET_MAX_WAIT" ]; do sleep 10; waited=$((waited + 15)); busy=$(cpu_busy 5); done
  local tw; tw=$(ss -Htan state time-wait | wc -l)
  local la; la=$(cut -d' ' -f1 /proc/loadavg)
  limit=$(run_limit "$scen")
  log "$scen $side round $round: start (busy ${busy}% load $la time_wait $tw, limit ${limit}s)"
  start=$(date +%s.%N)
  local j0; j0=($(jiffies))
  # timeout puts the script in its own process group and, on expiry, signals that whole
  # group: the servers and load generators this run started, nothing else.
  case $scen in
    idle)   B="$OUT/bin-$side" timeout -k 10 "$limit" bash "$SCRIPTS/idle-fresh.sh" $IDLE_ARGS ;;
    fanout) B="$OUT/bin-$side" timeout -k 10 "$limit" bash "$SCRIPTS/fanout.sh" $FANOUT_ARGS ;;
    storm)  B="$OUT/bin-$side" timeout -k 10 "$limit" bash "$SCRIPTS/storm.sh" ;;
    typing) B="$OUT/bin-$side" timeout -k 10 "$limit" bash "$SCRIPTS/typing.sh" $TYPING_ARGS ;;
  esac > "$dir/stdout.txt" 2> "$dir/stderr.txt" < /dev/null
  rc=$?
  local j1; j1=($(jiffies))
  # CPU used during the run by anything but this run's processes and PostgreSQL, in % of the machine
  local other; other=$(awk -v b=$(( j1[0] - j0[0] )) -v t=$(( j1[1] - j0[1] )) -v o=$(( j1[2] - j0[2] )) -v g=$(( j1[3] - j0[3] )) \
    'BEGIN { x = t ? 100 * (b - o - g) / t : 0; printf "%.0f", x < 0 ? 0 : x }')
  local secs; secs=$(echo "$(date +%s.%N) - $start" | bc | xargs printf "%.0f")
  cp "$BENCH_DIR"/*.log "$dir/" 2>/dev/null; rm -f "$BENCH_DIR"/*.log
  for f in "$BENCH_DIR"/{fanout,storm}-client-*.txt; do [ -f "$f" ] && mv "$f" "$dir/"; done
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$side" "$round" "$busy" "$other" "$la" "$tw" "$secs" "$rc" "$dir" >> "$OUT/runs.tsv"
  log "$scen $side round $round: done in ${secs}s rc=$rc (other processes used ${other}% of the machine meanwhile)"
  [ $rc = 0 ] || echo "$scen $side $round rc=$rc ($dir)" >> "$OUT/failures"
  ports_free || { log "ports still in use after the run: stopping here (check ss -ltnp)"; summarize; exit 1; }
}

summarize() {
  python3 - "$OUT" "$QUIET_CPU" <<'PY'
import sys, os, re, statistics as st
out, quiet = sys.argv[1], float(sys.argv[2])
rows = [l.rstrip('\n').split('\t') for l in open(os.path.join(out, 'runs.tsv'))] if os.path.exists(os.path.join(out, 'runs.tsv')) else []
def sections(path):
    """'== name ==' sections of 'key value' lines (the scripts join lines with ';')."""
    secs, cur = [], None
    if not os.path.exists(path): return secs
    for line in open(path, errors='replace'):
        if line.startswith('{'): continue
        for part in line.strip().split(';'):
            part = part.strip()
            if not part: continue
            if part.startswith('== '):
                cur = {}; secs.append(cur); continue
            m = re.match(r'^(.*\S)\s+(-?[0-9.]+)$', part)
            if m and cur is not None: cur[m.group(1)] = float(m.group(2))
    return secs
def f(x, d=1): return '-' if x is None else (f'{x:,.{d}f}')
HEAD = {'idle': ('KiB/socket', 'server_rss_per_socket_kib'), 'fanout': ('p99 ms', 'latency_p99_ms'),
        'storm': ('all back s', 'all_back_secs'), 'typing': ('p99 ms', 'latency_p99_ms')}
table, agg = [], {}
for scen, side, rnd, busy, other, la, tw, secs, rc, d in rows:
    s = sections(os.path.join(d, 'stdout.txt'))
    if scen == 'storm' and not s:
        s = [x for i in (0, 1) for x in sections(os.path.join(d, f'storm-client-{i}.txt'))]
    g = lambda k: [x.get(k) for x in s if k in x]
    if scen == 'idle' and s:
        x = s[0]; nums = (f"RSS/socket {f(x.get('server_rss_per_socket_kib'))} KiB; RSS {f(x.get('server_rss_mib'))} MiB; "
                          f"opened/failed/dropped {f(x.get('opened'),0)}/{f(x.get('failed'),0)}/{f(x.get('dropped'),0)}; connect {f(x.get('connect_secs'),2)} s")
        head = [x.get('server_rss_per_socket_kib')]
    elif scen in ('fanout', 'typing') and s:
        p99 = g('latency_p99_ms'); p50 = g('latency_p50_ms')
        nums = (f"p99 {' / '.join(f(v, 2) for v in p99)} ms; p50 {' / '.join(f(v, 2) for v in p50)} ms; "
                f"deliveries/s {f(sum(g('deliveries_per_sec')), 0)}; lost {f(sum(g('lost')), 0)}; late_sends {f(sum(g('late_sends')), 0)}; "
                f"server CPU {' / '.join(f(v) for v in g('server_cpu_percent'))} %")
        head = p99
    elif scen == 'storm' and s:
        nums = (f"all back {' / '.join(f(v, 2) for v in g('all_back_secs'))} s; p50 {' / '.join(f(v / 1000, 2) for v in g('reconnect_p50_ms'))} s; "
                f"back {f(sum(g('back')), 0)}/{f(sum(g('sockets')), 0)}; opened before {f(sum(g('opened_before_storm')), 0)}; "
                f"errors {f(sum(g('reconnect_errors')), 0)}")
        head = g('all_back_secs')
    else:
        nums, head = f"NO RESULT (rc={rc}, see {d})", []
    head = [v for v in head if v is not None]
    if head: agg.setdefault(scen, {}).setdefault(side, []).append(max(head))   # worst shard
    mark = lambda v: f'{v}%' + ('*' if float(v) > quiet else '')
    table.append((scen, side, rnd, mark(busy), mark(other), la, tw, secs + 's', nums))
hdr = ('scenario', 'bin', 'run', 'before', 'other', 'load', 'tw', 'took', 'numbers')
n = len(hdr) - 1
w = [max(len(str(r[i])) for r in table + [hdr]) for i in range(n)]
lines = ['  '.join(str(r[i]).ljust(w[i]) for i in range(n)) + '  ' + r[n] for r in [hdr] + table]
lines.append('')
lines.append(f'before = machine CPU busy in the 5 s before the run; other = CPU used during the run by processes other than '
             f'the run and PostgreSQL (% of all cores); * = above {quiet:g}%: not a quiet run, do not trust its numbers. '
             'load = 1-min load average at start; tw = TIME_WAIT sockets at start. fanout/storm: two shards, "s0 / s1".')
lines.append('Headline per binary (worst shard per run; runs listed in order):')
for scen in ('idle', 'fanout', 'storm', 'typing'):
    if scen not in agg: continue
    a, b = agg[scen].get('A', []), agg[scen].get('B', [])
    ratio = f'  B/A {st.mean(b) / st.mean(a):.3f}' if a and b and st.mean(a) else ''
    lines.append(f"  {scen:7} {HEAD[scen][0]:11} A: {', '.join(f(v, 2) for v in a):24} B: {', '.join(f(v, 2) for v in b):24}{ratio}")
if os.path.exists(os.path.join(out, 'failures')):
    lines.append('FAILURES:'); lines += ['  ' + l.rstrip() for l in open(os.path.join(out, 'failures'))]
text = '\n'.join(lines)
open(os.path.join(out, 'summary.txt'), 'w').write(open(os.path.join(out, 'conditions.txt')).read() + '\n' + text + '\n')
print(text)
PY
}

# ---------- main ----------
skipped=0
for scen in "${SCENARIOS[@]}"; do
  for round in $(seq 1 "$ROUNDS"); do
    for side in A B; do
      if [ $(( $(date +%s) - T0 )) -ge "$MAX_TOTAL_SECS" ]; then
        log "MAX_TOTAL_SECS=$MAX_TOTAL_SECS reached: skipping $scen $side round $round"; skipped=1; continue
      fi
      run_one "$scen" "$side" "$round"
    done
  done
done
[ $skipped = 0 ] || echo "runs skipped at the time limit" >> "$OUT/failures"
log "all runs done in $(( $(date +%s) - T0 ))s; summary: $OUT/summary.txt"
echo
echo "=== summary ($OUT/summary.txt) ==="
summarize
