#!/usr/bin/env bash
# `npm test`: installs what is missing, then type-checks, lints and runs every test (unit tests
# and the conformance suite against the real runtimes). Extra arguments go to vitest.
# CONTEXEC_TEST_REPORT=FILE also writes vitest's JSON report there (used by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-node-modules.sh
scripts/setup.sh

echo "== type check (tsc -b, and the tests)"
npx tsc -b
npx tsc -p tsconfig.tests.json
echo "== lint and format (biome)"
npx biome ci --reporter=summary .
echo "== tests (vitest)"
report=()
if [ -n "${CONTEXEC_TEST_REPORT:-}" ]; then
  report=(--reporter=default --reporter=json "--outputFile.json=$CONTEXEC_TEST_REPORT")
fi
npx vitest run "${report[@]}" "$@"
