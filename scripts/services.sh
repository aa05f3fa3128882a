#!/usr/bin/env bash
# Makes sure the services the tests talk to are up: PostgreSQL on
# 127.0.0.1:5432 (user postgres, trust auth) and Redis on 127.0.0.1:6379.
# Starts them when installed but stopped, installs them (Debian packages)
# when missing, and exits non-zero with a clear message when it cannot:
# tests never skip for a missing service.
set -euo pipefail

PG_HOST=127.0.0.1 PG_PORT=5432 REDIS_HOST=127.0.0.1 REDIS_PORT=6379

say() { printf 'services: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
  say "installing $*"
  if [ -z "${VRIDGE_APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || die "apt-get update failed"
    export VRIDGE_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || die "apt-get install $* failed"
}

wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "$what did not come up"
}

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" && psql -h "$PG_HOST" -p "$PG_PORT" -U postgres -Atc 'select 1' postgres; }

ensure_postgres() {
  if command -v pg_isready >/dev/null && pg_up >/dev/null 2>&1; then return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql postgresql-client
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  # Trust local connections, as on the development machines (tests only).
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || pg_ctlcluster --skip-systemctl-redirect "$version" main restart >&2 || true
  wait_for "PostgreSQL on $PG_HOST:$PG_PORT" pg_up
}

redis_up() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping | grep -q PONG; }

ensure_redis() {
  if command -v redis-cli >/dev/null && redis_up >/dev/null 2>&1; then return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  say "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/vridge-tests.log >&2
  wait_for "Redis on $REDIS_HOST:$REDIS_PORT" redis_up
}

ensure_postgres
ensure_redis
say "PostgreSQL and Redis are up"
