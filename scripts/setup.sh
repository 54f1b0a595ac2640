#!/usr/bin/env bash
# Sets up whatever is still missing on a Debian 12 machine, skipping what is done: system
# packages (as root), npm packages, the media worker, the two packages a portal installs (the
# client SDK bundle, the server package). Run by `npm start` and `npm test`.
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

# The server package a portal's backend installs (@haven/server-sdk): its admin API types are
# generated from docs/openapi.json, its token claims share the protocol's limits.
server_bundle=server-sdk/dist/index.js
if [ ! -f "$server_bundle" ] || [ -n "$(find server-sdk/src server-sdk/package.json server-sdk/tsconfig.build.json \
  client-sdk/src/protocol docs/openapi.json scripts/build-server-sdk.ts scripts/build-sdk.ts \
  -newer "$server_bundle" -not -path 'server-sdk/src/generated/*' -print -quit)" ]; then
  echo "[setup] building the server package"
  node --import tsx scripts/build-server-sdk.ts
fi
