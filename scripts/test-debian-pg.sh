#!/usr/bin/env bash
# The database tests again, against Debian's own PostgreSQL (15 on bookworm: cube, pg_trgm and unaccent, but no
# pgvector), so Marconi keeps working on a plain server: migrations, exact cube kNN, the reader's limits.
# Installs Debian's postgresql and postgresql-contrib when missing; a fresh throwaway cluster per run
# (tests/servers.py, chosen by MARCONI_TEST_PG_BIN). Left out: tests of HTTP handling that ask the database nothing
# new, and the outage tests, which start embedded servers of their own. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

find_bindir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]\
      && ls "/usr/share/postgresql/$(basename "$(dirname "$dir")")/extension/cube.control" >/dev/null 2>&1; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

if ! BINDIR="$(find_bindir)"; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  echo "==> installing Debian's PostgreSQL (postgresql, postgresql-contrib)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q --no-install-recommends postgresql postgresql-contrib >/dev/null 2>&1 || \
    { $sudo apt-get update -q >/dev/null && \
      $sudo apt-get install -y -q --no-install-recommends postgresql postgresql-contrib >/dev/null; }
  BINDIR="$(find_bindir)"
fi
echo "==> database tests against $("$BINDIR/postgres" --version) ($BINDIR)"
MARCONI_TEST_PG_BIN="$BINDIR" exec .venv/bin/python -m pytest -q tests/db tests/api \
  --ignore=tests/db/test_database_outage.py \
  --ignore=tests/api/test_slow_clients.py --ignore=tests/api/test_large_uploads.py \
  --ignore=tests/api/test_fetch_deadline.py --ignore=tests/api/test_hostile_input.py \
  --ignore=tests/api/test_words_api.py --ignore=tests/api/test_spotify_save.py \
  --ignore=tests/api/test_contract.py "$@"
