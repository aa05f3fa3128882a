#!/usr/bin/env bash
# The JavaScript side of the test command: the client library (clients/js)
# and the review page the server embeds. Installs Debian's chromium when it
# is missing (never skips the browser tests), then: npm ci, the type check,
# the lint, the Node tests against the real server binary, the browser tests
# in Chromium, and `npm pack --dry-run`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'js: %s\n' "$*" >&2; }

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  say "installing chromium (Debian package)"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >&2
  if [ ! -x "$CHROMIUM" ]; then
    say "FAILED: $CHROMIUM is still missing after apt-get install chromium"
    exit 1
  fi
fi
export CHROMIUM

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "FAILED: node and npm (Node 20 or newer) are needed"
  exit 1
fi

say "building the server"
cargo build --quiet --bin vridge-realtime
# Honour CARGO_TARGET_DIR (and any build.target-dir) through cargo itself.
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export VRIDGE_BIN="$target_dir/debug/vridge-realtime"
[ -x "$VRIDGE_BIN" ] || { say "FAILED: no server binary at $VRIDGE_BIN"; exit 1; }

cd clients/js
rm -rf test-results
say "npm ci"
npm ci --no-audit --no-fund --loglevel=error
say "type check"
npx tsc --noEmit -p .
say "lint"
npx eslint .
say "node tests (library against the real server)"
node --test test/
say "browser tests (Chromium: $CHROMIUM)"
node --test --test-concurrency=1 e2e/
say "npm pack --dry-run"
npm pack --dry-run 2>&1 | tail -n 20
