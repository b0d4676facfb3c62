#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL server on 127.0.0.1, its URL in
# JINGZHUN_TEST_POSTGRES_URL, so the operational-store tests run against a real server.
# Installs Debian's postgresql when missing and we are root (as in CI). Without a server
# (not root, no package), the command still runs and the PostgreSQL tests say why they skip.
set -euo pipefail
PORT="${JINGZHUN_PG_PORT:-54329}"
DIR="$(pwd)/build/pg"

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
BIN="$(find_bin || true)"
if [[ -z "$BIN" && "$(id -u)" == "0" ]]; then
  echo "==> installing PostgreSQL (apt-get) for the operational-store tests"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  BIN="$(find_bin || true)"
fi
if [[ -z "$BIN" ]]; then
  echo "==> no PostgreSQL server here; its tests will be skipped (they say so)"
  exec "$@"
fi

as_owner() {  # initdb and postgres refuse to run as root
  if [[ "$(id -u)" == "0" ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
rm -rf "$DIR"; mkdir -p "$DIR"
[[ "$(id -u)" == "0" ]] && chown postgres "$DIR"
echo "==> starting a throwaway PostgreSQL ($("$BIN/postgres" --version)) on 127.0.0.1:$PORT"
as_owner "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust >/dev/null
as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1" start >/dev/null
stop() { as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null || true; }
trap stop EXIT
as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres jingzhun_test
export JINGZHUN_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/jingzhun_test"
"$@"
