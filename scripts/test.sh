#!/usr/bin/env bash
# Install, lint, and run the whole test suite against a real (embedded) PostgreSQL, then the database tests again
# against Debian's PostgreSQL without pgvector (scripts/test-debian-pg.sh; MARCONI_SKIP_DEBIAN_PG=1 leaves that out).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-browser.sh   # Debian's Chromium + Playwright for the browser tests
.venv/bin/ruff check .
DATA_DIR="$(.venv/bin/python -c 'from marconi.config import from_env; print(from_env().data_dir)')"
if [ ! -d "$DATA_DIR/playlists" ] || [ ! -d "$DATA_DIR/images" ]; then
  echo "WARNING: sample data not found at $DATA_DIR; most tests will be SKIPPED." >&2
  echo "         Set MARCONI_DATA_DIR to the folder holding playlists/, images/ and fixtures/." >&2
fi
# both legs run; the script fails if either fails. Arguments go to the main leg only.
status=0
.venv/bin/python -m pytest -q "$@" || status=$?
if [ -z "${MARCONI_SKIP_DEBIAN_PG:-}" ]; then
  bash scripts/test-debian-pg.sh || { leg=$?; [ "$status" != 0 ] || status=$leg; }
fi
exit "$status"
