#!/usr/bin/env bash
# Installs and starts a local Docker engine (Debian's docker.io) and makes
# `docker compose` (Compose v2, built from the Go module proxy) available.
# Idempotent: does nothing that is already done.
set -euo pipefail

COMPOSE_VERSION=${COMPOSE_VERSION:-v2.40.3}
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
LOG=/var/log/dockerd.log

say() { echo "engine: $*"; }

if ! command -v dockerd >/dev/null; then
  say "installing docker.io from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    docker.io iptables ca-certificates >/dev/null
fi

# Containers get the MTU of the host's uplink (1400 here, not Docker's 1500).
if [ ! -f /etc/docker/daemon.json ]; then
  uplink=$(ip -o route show default | awk '{print $5; exit}')
  mtu=$(cat "/sys/class/net/${uplink:-eth0}/mtu" 2>/dev/null || echo 1500)
  mkdir -p /etc/docker
  printf '{ "mtu": %s }\n' "$mtu" >/etc/docker/daemon.json
  say "wrote /etc/docker/daemon.json (mtu $mtu)"
fi

if docker info >/dev/null 2>&1; then
  say "engine already answers"
else
  say "starting dockerd (log: $LOG)"
  setsid dockerd >>"$LOG" 2>&1 </dev/null &
  deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      say "dockerd did not answer within 60s; tail of $LOG:"; tail -20 "$LOG"; exit 1
    fi
    sleep 1
  done
  say "engine up"
fi

if ! docker compose version >/dev/null 2>&1; then
  say "building docker compose $COMPOSE_VERSION from the Go module proxy"
  export PATH=$PATH:/usr/local/go/bin
  # `go install pkg@version` refuses compose's go.mod (it has exclude
  # directives), so build inside the downloaded module instead.
  src=$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  out=$(mktemp -d)
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$out/docker-compose" \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" ./cmd)
  install -D -m 0755 "$out/docker-compose" "$PLUGIN_DIR/docker-compose"
  rm -rf "$out"
fi
say "$(docker version --format 'engine {{.Server.Version}} (API {{.Server.APIVersion}}), client {{.Client.Version}}')"
say "$(docker compose version)"
