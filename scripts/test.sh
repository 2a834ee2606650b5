#!/usr/bin/env bash
# `npm test`: installs what is missing, then type-checks, lints and runs every test (unit tests
# and the conformance suite against the real runtimes), then, as root, runs the Apptainer suite,
# its probe and the CLI's tests again as an ordinary user (scripts/test-unprivileged.sh).
# Extra arguments go to vitest (and leave the ordinary user's run out).
#   CONTEXEC_TEST_REPORT=FILE    also writes vitest's JSON report there, both runs merged (.ci/run)
#   CONTEXEC_RUNTIMES=LIST       the runtimes to test (default: those this machine has or can get)
#   CONTEXEC_UNPRIVILEGED=0      leaves the ordinary user's run out
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

scripts/ensure-node-modules.sh
ready=" $(scripts/setup.sh) "

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
status=0
npx vitest run "${report[@]}" "$@" || status=$?

# The same Apptainer suite as an ordinary user, where this machine can switch to one.
why_not=""
if [ "${CONTEXEC_UNPRIVILEGED:-1}" = 0 ]; then why_not="CONTEXEC_UNPRIVILEGED=0"
elif [ $# -gt 0 ]; then why_not="vitest was given arguments ($*)"
elif ! runtime_selected apptainer; then why_not="CONTEXEC_RUNTIMES=$CONTEXEC_RUNTIMES leaves Apptainer out"
elif [ "${ready#* apptainer }" = "$ready" ]; then why_not="Apptainer could not be set up here"
elif ! is_root; then why_not="this run is already an ordinary user's"
fi
if [ -n "$why_not" ]; then
  echo "== tests as an ordinary user: not run ($why_not)"
  exit "$status"
fi
echo "== tests as an ordinary user (vitest project \"unprivileged\")"
unprivileged_status=0
if [ -n "${CONTEXEC_TEST_REPORT:-}" ]; then
  second=$(mktemp)
  CONTEXEC_UNPRIVILEGED_REPORT="$second" scripts/test-unprivileged.sh || unprivileged_status=$?
  node scripts/merge-vitest-reports.mjs "$CONTEXEC_TEST_REPORT" "$CONTEXEC_TEST_REPORT" "$second"
  rm -f "$second"
else
  scripts/test-unprivileged.sh || unprivileged_status=$?
fi
[ "$status" != 0 ] || status=$unprivileged_status
exit "$status"
