#!/usr/bin/env bash
# `make compose-test`: run the real docker-compose.yml, with two replicas of
# each consumer sharing PostgreSQL, the traces profile's Zipkin and the metrics
# profile's Prometheus, and the acceptance features against it; then the same
# stack on three Kafka brokers (docker-compose.brokers3.yml), one of them
# killed, and the chain's features again; each taken down, volumes included.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "compose-test: $*"; }
started=$SECONDS

# 1. An engine and Compose v2; 2. images the file names but this machine cannot pull.
if ! docker info >/dev/null 2>&1 || ! docker compose version >/dev/null 2>&1; then
  compose/standins/engine.sh
fi
docker image inspect python:3.11-slim >/dev/null 2>&1 || docker pull -q python:3.11-slim 2>/dev/null ||
  compose/standins/python-slim.sh
kafka_image=apache/kafka:$(cat kafka/VERSION)
docker image inspect "$kafka_image" >/dev/null 2>&1 || docker pull -q "$kafka_image" 2>/dev/null ||
  compose/standins/kafka.sh
postgres_image=$(sed -n 's/^ *image: *\(postgres:.*\)$/\1/p' docker-compose.yml)
docker image inspect "$postgres_image" >/dev/null 2>&1 || docker pull -q "$postgres_image" 2>/dev/null ||
  compose/standins/postgres.sh "$postgres_image"
zipkin_image=$(sed -n 's/^ *image: *\(openzipkin\/zipkin:.*\)$/\1/p' docker-compose.yml)
docker image inspect "$zipkin_image" >/dev/null 2>&1 || docker pull -q "$zipkin_image" 2>/dev/null ||
  compose/standins/zipkin.sh
prometheus_image=$(sed -n 's/^ *image: *\(prom\/prometheus:[^ ]*\).*$/\1/p' docker-compose.yml)
docker image inspect "$prometheus_image" >/dev/null 2>&1 || docker pull -q "$prometheus_image" 2>/dev/null ||
  compose/standins/prometheus.sh

# 3. Up, healthy, features, down.
files=(-f docker-compose.yml)
down() {
  if [ "${1:-}" = failed ]; then
    say "failed: what each container said last"
    docker compose "${files[@]}" --profile traces --profile metrics logs --no-color --tail 15 2>&1 | tail -150 || true
  fi
  say "taking the stack down"
  docker compose "${files[@]}" --profile traces --profile metrics down --volumes --remove-orphans >/dev/null 2>&1 || true
}
trap 'status=$?; if [ $status -ne 0 ]; then down failed; else down; fi' EXIT
down
say "building and starting the stack with Zipkin, Prometheus, two replicas of billing and of notifications"
docker compose --profile traces --profile metrics up --build --detach --wait --wait-timeout 300 --scale billing=2 --scale notifications=2
say "stack healthy after $((SECONDS - started))s: $(docker compose ps --format '{{.Name}}' | sort | paste -sd ' ')"
say "running the features against it"
ORDERS_URL=http://127.0.0.1:5002 KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 ZIPKIN_URL=http://127.0.0.1:9411 \
SERVICE_LOGS='docker compose logs --no-color --no-log-prefix {service}' \
  .venv/bin/python -m behave features | tee .run/compose-acceptance.log
sed -n 's/^\([0-9]*\) scenarios passed, /compose acceptance: \1 passed, /p' .run/compose-acceptance.log
down

# 4. Three brokers (make up BROKERS=3): every topic on all three; one killed, the chain goes on.
files=(-f docker-compose.yml -f docker-compose.brokers3.yml)
say "building and starting the stack on three Kafka brokers"
docker compose "${files[@]}" up --build --detach --wait --wait-timeout 300
docker compose "${files[@]}" exec -T kafka /opt/kafka/bin/kafka-topics.sh --bootstrap-server kafka:19092 \
  --describe --topic orders.events | tee .run/compose-brokers3-topic.txt
grep -q "ReplicationFactor: 3" .run/compose-brokers3-topic.txt
grep -q "min.insync.replicas=2" .run/compose-brokers3-topic.txt
say "killing kafka-2, then running the chain's features on the other two"
docker compose "${files[@]}" kill kafka-2
for _ in $(seq 60); do  # until the other two have taken over the partitions kafka-2 led (a few seconds)
  docker compose "${files[@]}" exec -T kafka /opt/kafka/bin/kafka-topics.sh --bootstrap-server kafka:19092 \
    --describe --topic orders.events >.run/compose-brokers3-topic.txt 2>/dev/null || true
  grep -q "Leader: [13]" .run/compose-brokers3-topic.txt && ! grep -q "Leader: 2" .run/compose-brokers3-topic.txt && break
  sleep 1
done
say "$(grep -c 'Leader: [13]' .run/compose-brokers3-topic.txt) partitions of orders.events led by kafka and kafka-3"
ORDERS_URL=http://127.0.0.1:5002 KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092,127.0.0.1:9096 \
SERVICE_LOGS="docker compose ${files[*]} logs --no-color --no-log-prefix {service}" \
  .venv/bin/python -m behave features/full_chain.feature features/duplicate_order.feature | tee .run/compose-brokers3.log
sed -n 's/^\([0-9]*\) scenarios passed, /compose on three brokers, one killed: \1 passed, /p' .run/compose-brokers3.log
say "done in $((SECONDS - started))s"
