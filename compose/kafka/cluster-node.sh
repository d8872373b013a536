#!/usr/bin/env bash
# Entry point of each Kafka node of docker-compose.brokers3.yml. The apache/kafka
# image formats its storage with CLUSTER_ID alone, as a static quorum needs; the
# nodes here form a dynamic one (KIP-853, as `make run BROKERS=3` does), whose
# storage is formatted with the initial controllers, the same on every node. So
# a node's empty storage is formatted here first, with the properties the image
# makes of the KAFKA_* variables; then the image's own entry point runs, and
# finds it formatted.
set -euo pipefail
if [ ! -f "$KAFKA_LOG_DIRS/meta.properties" ]; then
  env | awk -F= '/^KAFKA_[A-Z_]+=/ {
    key = tolower(substr($1, 7)); gsub("_", ".", key); print key "=" substr($0, length($1) + 2)
  }' >/tmp/format.properties
  /opt/kafka/bin/kafka-storage.sh format --cluster-id "$CLUSTER_ID" \
    --initial-controllers "$INITIAL_CONTROLLERS" --config /tmp/format.properties
fi
exec /etc/kafka/docker/run
