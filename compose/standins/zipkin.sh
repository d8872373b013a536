#!/usr/bin/env bash
# Builds a local stand-in for the official openzipkin/zipkin:<version> image (the
# tag docker-compose.yml names): Debian's Java 17 plus the same io.zipkin:zipkin-server
# exec jar from Maven Central that `make run TRACES=1` runs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
image=$(sed -n 's/^ *image: \(openzipkin\/zipkin:.*\)$/\1/p' "$repo/docker-compose.yml")
version=${image#*:}
context=$repo/.cache/standins/zipkin-$version # .cache/ is git-ignored
log=$context.log
say() { echo "zipkin: $*"; }

if docker image inspect "$image" >/dev/null 2>&1; then
  say "$image already exists"; exit 0
fi
docker image inspect python:3.11-slim >/dev/null 2>&1 || "$here/python-slim.sh"

say "fetching the Zipkin $version exec jar from Maven Central"
rm -rf "$context"
mkdir -p "$context"
cp -r "$here/zipkin/." "$context/"
(cd "$context" && mvn -q -B dependency:copy -Dartifact="io.zipkin:zipkin-server:$version:jar:exec" \
  -DoutputDirectory="$context" >"$log" 2>&1) ||
  { tail -30 "$log"; exit 1; }
mv "$context/zipkin-server-$version-exec.jar" "$context/zipkin-exec.jar"

say "building $image"
DOCKER_BUILDKIT=0 docker build -t "$image" "$context" >>"$log" 2>&1 ||
  { tail -30 "$log"; exit 1; }
say "built $image ($(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec))"
