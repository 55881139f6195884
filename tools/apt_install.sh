#!/usr/bin/env bash
# Install Debian packages that some tests need, the same way everywhere: idempotent (nothing to do
# when they are installed already); does nothing (exit 0, with a message) when not root or when
# apt-get is missing, and the tests that need the packages then skip themselves.
# Usage: bash tools/apt_install.sh LABEL PACKAGE...   (LABEL names the caller in messages)
set -uo pipefail
label=$1
shift

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
  echo "$label: no apt-get here; skipping (the tests that need $* will skip)"
  exit 0
fi

missing=()
for pkg in "$@"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "$label: not root; skipping ${missing[*]} (the tests that need them will skip)"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
install() { apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
# a fresh machine has no package lists, an old one may have stale lists: update when needed
if ! apt-cache show "${missing[0]}" >/dev/null 2>&1 || ! install; then
  apt-get update -qq || { echo "$label: apt-get update failed; the tests that need ${missing[*]} will skip"; exit 0; }
  if ! install; then
    echo "$label: apt-get install failed for ${missing[*]}; the tests that need them will skip"
    exit 0
  fi
fi
echo "$label: installed ${missing[*]}"
