#!/usr/bin/env bash
# Builds a local stand-in for the official apache/kafka:<kafka/VERSION> image:
# Debian's Java 17 plus the broker jars from Maven Central (kafka/pom.xml).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
version=$(cat "$repo/kafka/VERSION")
image=apache/kafka:$version
context=$repo/.cache/standins/kafka-$version # .cache/ is git-ignored
log=$context.log
say() { echo "kafka: $*"; }

if docker image inspect "$image" >/dev/null 2>&1; then
  say "$image already exists"; exit 0
fi
docker image inspect python:3.11-slim >/dev/null 2>&1 || "$here/python-slim.sh"

say "fetching the Kafka $version jars from Maven Central"
rm -rf "$context"
mkdir -p "$context"
cp -r "$here/kafka/." "$context/"
mvn -q -B -f "$repo/kafka/pom.xml" -Dkafka.version="$version" \
  dependency:copy-dependencies -DoutputDirectory="$context/libs" >"$log" 2>&1 ||
  { tail -30 "$log"; exit 1; }

say "building $image"
# The classic builder needs no buildx plugin and uses the local base image.
DOCKER_BUILDKIT=0 docker build -t "$image" "$context" >>"$log" 2>&1 ||
  { tail -30 "$log"; exit 1; }

say "kafka-topics.sh --version: $(docker run --rm "$image" /opt/kafka/bin/kafka-topics.sh --version)"
say "built $image ($(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec))"
