#!/usr/bin/env bash
# Install what the browser tests (pytest -m browser) need: Debian's chromium + chromium-driver, the pinned
# Playwright Python package in .venv, and the pinned axe-core (accessibility checks, injected into each page by the
# tests from .browser-tools/, never fetched at run time). Idempotent; never downloads Playwright's own browsers.
set -euo pipefail
cd "$(dirname "$0")/.."

PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.2}"
AXE_CORE_VERSION="${AXE_CORE_VERSION:-4.14.1}"
AXE_DIR=.browser-tools  # ignored by git

if [ ! -x /usr/bin/chromium ]; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium chromium-driver \
        fonts-dejavu-core
fi
if ! command -v npm >/dev/null; then
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends npm
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

axe_installed() {
    node -p "require('./$AXE_DIR/node_modules/axe-core/package.json').version" 2>/dev/null
}
if [ "$(axe_installed)" != "$AXE_CORE_VERSION" ]; then
    npm install --prefix "$AXE_DIR" --no-save --no-audit --no-fund --no-package-lock "axe-core@$AXE_CORE_VERSION"
fi
echo "axe-core $(axe_installed)"
