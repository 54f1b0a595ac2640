#!/usr/bin/env bash
# Sets up whatever is still missing on a Debian 12 machine, skipping what is done: system
# packages (as root), npm packages, the media worker. Run by `npm start` and `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-system.sh

# npm packages: reinstalled only when package-lock.json changed since the last install.
lock_sum=$(sha256sum package-lock.json | cut -c1-64)
if [ "$(cat node_modules/.haven-lock-sum 2>/dev/null)" != "$lock_sum" ]; then
  echo "[setup] npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" >node_modules/.haven-lock-sum
fi

bash scripts/build-worker.sh
