#!/usr/bin/env bash
# Sets up whatever is still missing on a Debian 12 machine, skipping what is done: system
# packages (as root), npm packages, the media worker, the client SDK bundle. Run by `npm start`
# and `npm test`.
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

# The client SDK bundle (served to browsers by the demo and used by the browser tests).
bundle=client-sdk/dist/haven-sdk.js
if [ ! -f "$bundle" ] || [ -n "$(find client-sdk/src scripts/build-sdk.ts -newer "$bundle" -print -quit)" ]; then
  echo "[setup] building the client SDK"
  node --import tsx scripts/build-sdk.ts
fi
