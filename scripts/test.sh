#!/usr/bin/env bash
# Install, lint, and run the whole test suite against a real (embedded) PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-browser.sh   # Debian's Chromium + Playwright for the browser tests
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
