#!/usr/bin/env bash
# Builds a local stand-in for the official `python:3.11-slim` image from a
# debootstrapped Debian bookworm (Debian's python3 is 3.11). No registry needed.
set -euo pipefail

IMAGE=python:3.11-slim
say() { echo "python-slim: $*"; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  say "$IMAGE already exists"; exit 0
fi
command -v debootstrap >/dev/null || {
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

# The Debian mirror apt is configured with (deb822 or one-line format).
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
  awk '/^URIs:/ && $2 ~ /\/debian\/?$/ {print $2; exit}')
[ -n "$mirror" ] || mirror=$(awk '$1=="deb" && $3 ~ /\/debian\/?$/ {print $3; exit}' \
  /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

root=$(mktemp -d /var/tmp/python-slim.XXXXXX)
cleanup() {
  { findmnt -rn -o TARGET | grep "^$root/" || true; } | sort -r | xargs -r umount -l
  rm -rf --one-file-system "$root" "$root.log"
}
trap cleanup EXIT
# Run in the new root with a clean environment (no host PIP_*/PYTHON* vars).
inroot() { env -i PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 chroot "$root" "$@"; }

say "debootstrap bookworm from $mirror (a few minutes)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log"; exit 1; }

say "configuring python, pip and CA certificates"
# Same apt sources and apt settings as the host, so images built FROM this
# one can apt-get install from the same mirror.
rm -f "$root/etc/apt/sources.list"
cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/" 2>/dev/null ||
  cp /etc/apt/sources.list "$root/etc/apt/sources.list"
cp /etc/apt/apt.conf.d/99artifact-registry "$root/etc/apt/apt.conf.d/" 2>/dev/null || true
# Like Debian's slim images: later package installs skip docs and locales.
cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
# The host's extra CAs (its HTTPS egress is intercepted), trusted system-wide.
cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
inroot update-ca-certificates >/dev/null 2>&1
# pip trusts the system bundle, not its own vendored certifi (as on the host).
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$root/etc/pip.conf"
# Official image: python/pip in /usr/local/bin, pip upgradable, no PEP 668 marker.
rm -f "$root"/usr/lib/python3.*/EXTERNALLY-MANAGED
# Debian disables ensurepip for its python3, so install pip from Debian's wheel.
inroot sh -c 'w=$(echo /usr/share/python-wheels/pip-*.whl); python3 "$w/pip" install -q \
  --no-index --find-links /usr/share/python-wheels pip setuptools 2>&1 | grep -v "as the .root. user" || true'
inroot pip --version >/dev/null
for name in python python3 python3.11; do ln -sf /usr/bin/python3.11 "$root/usr/local/bin/$name"; done
inroot sh -c 'apt-get clean; rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /root/.cache \
  /var/log/*.log /usr/share/doc/*/changelog* /usr/share/man/* /usr/share/info/* /usr/share/locale/*'

say "importing as $IMAGE"
version=$(inroot python3 -c 'import platform; print(platform.python_version())')
tar -C "$root" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "ENV PYTHON_VERSION=$version" \
  --change 'CMD ["python3"]' \
  --message "local stand-in for python:3.11-slim (Debian bookworm python3 $version)" \
  - "$IMAGE" >/dev/null
say "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | numfmt --to=iec))"
