#!/usr/bin/env bash
# Builds a local stand-in for the official prom/prometheus:<version> image (the
# tag docker-compose.yml names) from Debian's prometheus package, the one
# `make run METRICS=1` runs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
image=$(sed -n 's/^ *image: *\(prom\/prometheus:[^ ]*\).*$/\1/p' "$repo/docker-compose.yml")
log=$repo/.cache/standins/prometheus.log # .cache/ is git-ignored
say() { echo "prometheus: $*"; }

if docker image inspect "$image" >/dev/null 2>&1; then
  say "$image already exists"; exit 0
fi
docker image inspect python:3.11-slim >/dev/null 2>&1 || "$here/python-slim.sh"

say "building $image from Debian's prometheus"
mkdir -p "$(dirname "$log")"
DOCKER_BUILDKIT=0 docker build -t "$image" "$here/prometheus" >"$log" 2>&1 || { tail -30 "$log"; exit 1; }

say "$(docker run --rm "$image" --version 2>&1 | head -1)"
say "built $image ($(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec))"
