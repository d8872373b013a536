#!/usr/bin/env bash
# Builds a local stand-in for the official postgres image named in
# docker-compose.yml (its first argument, e.g. postgres:17.6): Debian's
# postgresql package and an entrypoint honouring the same variables.
set -euo pipefail

image=${1:?usage: postgres.sh postgres:<tag>}
here=$(cd "$(dirname "$0")" && pwd)
log=$(cd "$here/../.." && pwd)/.cache/standins/postgres.log # .cache/ is git-ignored
say() { echo "postgres: $*"; }

if docker image inspect "$image" >/dev/null 2>&1; then
  say "$image already exists"; exit 0
fi
docker image inspect python:3.11-slim >/dev/null 2>&1 || "$here/python-slim.sh"

say "building $image from Debian's postgresql"
mkdir -p "$(dirname "$log")"
# The classic builder needs no buildx plugin and uses the local base image.
DOCKER_BUILDKIT=0 docker build -t "$image" "$here/postgres" >"$log" 2>&1 || { tail -30 "$log"; exit 1; }

say "postgres --version: $(docker run --rm "$image" postgres --version)"
say "built $image ($(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec))"
