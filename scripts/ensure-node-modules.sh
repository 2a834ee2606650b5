#!/usr/bin/env bash
# Installs the npm dependencies when they are missing or older than package-lock.json, so that
# `npm test` and `npm run demo` work from a fresh clone with nothing done first.
set -euo pipefail
cd "$(dirname "$0")/.."
marker=node_modules/.package-lock.json
if [ ! -f "$marker" ] || [ package-lock.json -nt "$marker" ]; then
  printf '[contexec setup] installing npm dependencies\n' >&2
  # `npm install`, not `npm ci`: npm 11 leaves other platforms' optional packages (Biome's
  # binaries) out of the lock file, and `npm ci` then refuses it as out of sync.
  npm install --no-audit --no-fund --loglevel=error >&2
fi
