#!/usr/bin/env bash
# `make install`: .venv with the pinned dependencies, reported in one line.
# uv installs when there is one: on PATH, or fetched once from PyPI into the
# user's cache (like pip's and Maven's, shared by every clone); pip when uv
# cannot be had. INSTALLER=uv or INSTALLER=pip chooses. The tools' own output
# is shown only when they fail.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
PYTHON=${PYTHON:-python3}
INSTALLER=${INSTALLER:-auto}
VENV=.venv
CACHED_UV=${XDG_CACHE_HOME:-$HOME/.cache}/event-driven/uv-$UV_VERSION
export UV_PYTHON_DOWNLOADS=never # the venv uses $PYTHON, never a downloaded one
export LC_NUMERIC=C                # seconds with a decimal point

started=$EPOCHREALTIME
output=$(mktemp)
trap 'rm -f "$output"' EXIT

quietly() {
  "$@" >>"$output" 2>&1
}

fail() {
  cat "$output" >&2
  echo "devstack      | environment: $1" >&2
  exit 1
}

# A uv binary from PyPI's wheel, put in place atomically (clones may race for it).
fetch_uv() {
  local scratch
  quietly mkdir -p "$(dirname "$CACHED_UV")" && scratch=$(mktemp -d "$CACHED_UV.XXXXXX" 2>>"$output") || return 1
  quietly "$PYTHON" -m venv "$scratch" && quietly "$scratch/bin/pip" install "uv==$UV_VERSION" &&
    mv "$scratch/bin/uv" "$CACHED_UV"
  local status=$?
  rm -rf "$scratch"
  return $status
}

find_uv() {
  if command -v uv >/dev/null; then
    uv=uv
    how="installed by uv"
  elif [[ -x $CACHED_UV ]]; then
    uv=$CACHED_UV
    how="installed by uv"
  elif fetch_uv; then
    uv=$CACHED_UV
    how="installed by uv $UV_VERSION (fetched from PyPI)"
  else
    return 1
  fi
}

with_uv() {
  { [[ -x $VENV/bin/python ]] || quietly "$uv" venv --seed --python "$PYTHON" "$VENV"; } &&
    quietly "$uv" pip install --python "$VENV/bin/python" -c constraints.txt -e . --group dev
}

with_pip() {
  { [[ -x $VENV/bin/python ]] || quietly "$PYTHON" -m venv "$VENV"; } &&
    quietly "$VENV/bin/pip" install --upgrade pip &&
    quietly "$VENV/bin/pip" install -c constraints.txt -e . --group dev
}

case $INSTALLER in
auto)
  if find_uv; then
    with_uv || fail "uv could not install the dependencies (its output is above)"
  else
    : >"$output" # the failed fetch of uv is not the user's problem: pip takes over
    how="installed by pip (uv could not be fetched)"
    with_pip || fail "pip could not install the dependencies (its output is above)"
  fi
  ;;
uv)
  find_uv || fail "uv is not on PATH and could not be fetched from PyPI (why is above)"
  with_uv || fail "uv could not install the dependencies (its output is above)"
  ;;
pip)
  how="installed by pip"
  with_pip || fail "pip could not install the dependencies (its output is above)"
  ;;
*)
  fail "INSTALLER must be auto, uv or pip, got '$INSTALLER'"
  ;;
esac

pins=$(grep -c '==' constraints.txt)
seconds=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
echo "devstack      | environment: $VENV with $pins pinned packages, $how (${seconds}s)"
