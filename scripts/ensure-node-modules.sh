#!/usr/bin/env bash
# Installs the npm dependencies when they are missing or older than package-lock.json, so that
# `npm test` and `npm run demo` work from a fresh clone with nothing done first.
set -euo pipefail
cd "$(dirname "$0")/.."
marker=node_modules/.package-lock.json
if [ ! -f "$marker" ] || [ package-lock.json -nt "$marker" ]; then
  printf '[contexec setup] installing npm dependencies (npm ci)\n' >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
