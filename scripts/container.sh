#!/usr/bin/env bash
# Build and run Marconi's container image with podman (docker works too: set ENGINE=docker).
#   bash scripts/container.sh build   # the image localhost/marconi:latest (first build: ~10 minutes, ~4 GB)
#   bash scripts/container.sh up      # PostgreSQL+pgvector and the API (deploy/container/compose.yaml), port $PORT
#   bash scripts/container.sh demo    # load the sample data into it (MARCONI_DATA_DIR, default ../shared/data)
#   bash scripts/container.sh status  # `marconi status` inside (--json for machines)
#   bash scripts/container.sh down    # stop both; the volumes keep the database and the models (-v removes them)
# With no registry in reach, `build` makes its Debian base image with debootstrap (set BASE to use your own).
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE="${ENGINE:-podman}"
BASE="${BASE:-docker.io/library/debian:bookworm-slim}"
LOCAL_BASE=localhost/debian:bookworm
IMAGE=localhost/marconi:latest
PROJECT="${COMPOSE_PROJECT:-marconi}"  # compose project: its containers and volumes are named after it
export MARCONI_DATA_DIR="$(cd "${MARCONI_DATA_DIR:-../shared/data}" 2>/dev/null && pwd || echo "${MARCONI_DATA_DIR:-../shared/data}")"

compose() {
  if [ "$ENGINE" = podman ]; then
    command -v podman-compose >/dev/null || { echo "podman-compose is missing: apt-get install podman-compose (or pip install podman-compose)" >&2; exit 1; }
    podman-compose -p "$PROJECT" -f deploy/container/compose.yaml "$@"
  else
    docker compose -p "$PROJECT" -f deploy/container/compose.yaml "$@"
  fi
}

tty_flag() { [ -t 0 ] || echo -T; }  # exec without a terminal (a script, a test) asks for none

base_image() {  # a Debian bookworm image: pulled when a registry answers, else made with debootstrap
  if "$ENGINE" image exists "$BASE" 2>/dev/null || "$ENGINE" pull -q "$BASE" >/dev/null 2>&1; then
    echo "$BASE"; return
  fi
  if ! "$ENGINE" image exists "$LOCAL_BASE" 2>/dev/null; then
    command -v debootstrap >/dev/null || { echo "cannot pull $BASE and debootstrap is missing: apt-get install debootstrap, or set BASE to a Debian bookworm image you have" >&2; exit 1; }
    root="$(mktemp -d)"
    echo "==> $BASE cannot be pulled: making $LOCAL_BASE with debootstrap (a few minutes)" >&2
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
    tar -C "$root" -c . | "$ENGINE" import - "$LOCAL_BASE" >/dev/null
    rm -rf "$root"
  fi
  echo "$LOCAL_BASE"
}

build() {
  local base args=()
  base="$(base_image)"
  # pass this host's pip indexes through, and mount the local ones (file://) into the build
  for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS; do
    key="$(echo "${var#PIP_}" | tr 'A-Z_' 'a-z-')"
    value="${!var:-$(python3 -m pip config get "global.$key" 2>/dev/null || true)}"
    [ -n "$value" ] || continue
    args+=(--build-arg "$var=$value")
    for item in $value; do
      dir="${item#file://}"; dir="${dir%/simple}"
      [ -d "$dir" ] && args+=(--volume "$dir:$dir:ro")
    done
  done
  cert="${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}"
  if [ -n "$cert" ] && [ -f "$cert" ]; then  # a proxy's CA, say: pip in the build trusts what pip here trusts
    args+=(--volume "$cert:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
  fi
  echo "==> building $IMAGE from $base"
  [ "$ENGINE" = podman ] && args+=(--format docker)  # keeps the HEALTHCHECK (the OCI format has none)
  "$ENGINE" build --network host --build-arg "BASE=$base" "${args[@]}" -f deploy/container/Containerfile -t "$IMAGE" .
}

case "${1:-}" in
  build) build ;;
  up) compose up -d; echo "==> serving on http://127.0.0.1:${PORT:-5000}/ (bash scripts/container.sh demo loads the sample data)" ;;
  demo) compose exec $(tty_flag) app marconi demo --no-serve ;;
  status) shift; compose exec $(tty_flag) app marconi status "$@" ;;
  down) shift; compose down "$@" ;;   # down -v also removes the volumes: the database and the models
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
