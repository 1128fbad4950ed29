#!/usr/bin/env bash
# The main job on a fresh machine: install, start the embedded PostgreSQL, load the sample data, train, serve.
#   bash scripts/demo.sh              # serves on http://127.0.0.1:5000/
#   PORT=8000 bash scripts/demo.sh
#   bash scripts/demo.sh --no-serve   # load and train, then exit
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/marconi demo --port "${PORT:-5000}" "$@"
