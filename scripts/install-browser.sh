#!/usr/bin/env bash
# Install what the browser tests (pytest -m browser) need: Debian's chromium + chromium-driver and the pinned
# Playwright Python package in .venv. Idempotent; never downloads Playwright's own browsers.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.2}"

if [ ! -x /usr/bin/chromium ]; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium chromium-driver \
        fonts-dejavu-core
fi
/usr/bin/chromium --version

if [ ! -x .venv/bin/python ]; then
    echo "no .venv here: run scripts/setup.sh first" >&2
    exit 1
fi
if [ "$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("playwright"))' 2>/dev/null)" \
     != "$PLAYWRIGHT_VERSION" ]; then
    .venv/bin/python -m pip install --quiet "playwright==$PLAYWRIGHT_VERSION"
fi
.venv/bin/python -c 'import importlib.metadata as m; print("playwright", m.version("playwright"))'
