#!/usr/bin/env bash
# Installs the Debian 12 packages Haven needs and the deb-src entry the worker build fetches
# libsrtp's source through. Skips everything already there. Not root and something missing:
# prints the exact command to run as root and exits non-zero.
set -euo pipefail

packages=(
  # media worker build (scripts/build-worker.sh)
  meson ninja-build pkg-config g++ make dpkg-dev
  libuv1-dev libssl-dev libusrsctp-dev libabsl-dev nlohmann-json3-dev
  # media worker at run time
  libuv1 libusrsctp2 libssl3 libabsl20220623
  # embedded Redis, and Sentinel for high-availability set-ups
  redis-server redis-sentinel
  # browser end-to-end tests (headless, driven by playwright-core)
  chromium fonts-liberation
  # the metrics test scrapes a node with a real Prometheus, and checks the alert rules with promtool
  prometheus
  # the TURN test relays a browser's media through a real coturn; the TLS test puts nginx in front
  coturn nginx
)
src_list=/etc/apt/sources.list.d/haven-deb-src.sources

log() { echo "[setup-system] $*"; }

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done

# The worker build needs libsrtp's source only when its cached static library is absent.
cache_root="${HAVEN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/haven}"
need_src=false
[ -f "$cache_root/libsrtp-2.5.0-openssl/lib/libsrtp2.a" ] || need_src=true
have_src=false
grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null && have_src=true
grep -qs '^deb-src' /etc/apt/sources.list 2>/dev/null && have_src=true

if [ ${#missing[@]} -eq 0 ] && { [ "$need_src" = false ] || [ "$have_src" = true ]; }; then
  log "system packages present"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "[setup-system] error: missing system set-up. As root, run:" >&2
  [ ${#missing[@]} -gt 0 ] && echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
  [ "$have_src" = false ] && [ "$need_src" = true ] &&
    echo "  bash scripts/setup-system.sh   # also adds a deb-src entry for $src_list" >&2
  exit 1
fi

if [ "$have_src" = false ] && [ "$need_src" = true ]; then
  # Same archives and suites as the binary entries, for source packages.
  log "adding deb-src entries ($src_list)"
  awk 'BEGIN{RS=""; ORS="\n\n"} /Types:[^\n]*deb/ && /URIs:/ { sub(/Types:[^\n]*/, "Types: deb-src"); print }' \
    /etc/apt/sources.list.d/debian.sources >"$src_list" 2>/dev/null || true
  if [ ! -s "$src_list" ] && [ -f /etc/apt/sources.list ]; then
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' >"${src_list%.sources}.list"
    rm -f "$src_list"
  fi
fi

log "apt-get update"
apt-get update -q >/tmp/haven-apt-update.log 2>&1 || { cat /tmp/haven-apt-update.log >&2; exit 1; }
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/haven-apt-install.log 2>&1 ||
    { tail -n 30 /tmp/haven-apt-install.log >&2; exit 1; }
fi
log "done"
