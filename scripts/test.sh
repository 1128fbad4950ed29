#!/usr/bin/env bash
# Install, lint, and run the whole test suite against a real (embedded) PostgreSQL.
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
exec .venv/bin/python -m pytest -q "$@"
