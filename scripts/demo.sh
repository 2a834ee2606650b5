#!/usr/bin/env bash
# `npm run demo`: the same job, unchanged, on Docker and then on Apptainer. Only the config file
# given to examples/hello differs ({ "runtime": "docker" } vs { "runtime": "apptainer" }).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-node-modules.sh
scripts/setup.sh
npx tsc -b
fixtures=$(scripts/build-fixtures.sh)

for backend in docker apptainer; do
  echo
  echo "== examples/hello on $backend (config: examples/hello/$backend.json)"
  node examples/hello/dist/main.js --config "examples/hello/$backend.json" --image "$fixtures/layered.tar"
done
for backend in docker apptainer; do
  echo
  echo "== examples/service on $backend: a service, a batch step against it, teardown"
  node examples/service/dist/main.js --config "examples/service/$backend.json" --image "$fixtures/busybox.tar"
done
