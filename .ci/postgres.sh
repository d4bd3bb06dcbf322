#!/usr/bin/env bash
# Start a throwaway PostgreSQL for the test suite (read models run against it as well as
# SQLite). Sourced by .ci/run: installs the server from Debian if it is missing, starts a
# cluster in a temporary directory on a free port, exports CAMBIO_TEST_PG_URL, and stops
# and deletes the cluster when the calling shell exits.
set -euo pipefail

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [[ -z "$(pg_bin)" ]]; then
    echo "installing PostgreSQL (Debian package postgresql)"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
PGBIN="$(pg_bin)"
PGDIR="$(mktemp -d /tmp/cambio-ci-pg.XXXXXX)"
PGPORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
as_pg() {  # initdb and postgres refuse to run as root
    if [[ $(id -u) -eq 0 ]]; then chown -R postgres "$PGDIR"; runuser -u postgres -- "$@"; else "$@"; fi
}
as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
    -o "-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
trap 'as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1; rm -rf "$PGDIR"' EXIT
export CAMBIO_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PGPORT/postgres"
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on port $PGPORT"
