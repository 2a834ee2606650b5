#!/usr/bin/env bash
# `npm run demo`: the same job, unchanged, on Docker and then on Apptainer. Only the config file
# given to examples/hello differs ({ "runtime": "docker" } vs { "runtime": "apptainer" }).
# CONTEXEC_RUNTIMES=apptainer (or docker) runs it on that runtime alone; unset, on every runtime
# this machine has or can install.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-node-modules.sh
ready=$(scripts/setup.sh)
[ -n "$ready" ] || { echo "no container runtime could be set up here (see above)" >&2; exit 1; }
npx tsc -b
fixtures=$(scripts/build-fixtures.sh)
for backend in docker apptainer; do
  case " $ready " in *" $backend "*) ;; *) echo "== $backend: not set up here, left out of the demo" ;; esac
done

for backend in $ready; do
  echo
  echo "== examples/hello on $backend (config: examples/hello/$backend.json)"
  node examples/hello/dist/main.js --config "examples/hello/$backend.json" --image "$fixtures/layered.tar"
done
for backend in $ready; do
  echo
  echo "== examples/service on $backend: a service, a batch step against it, teardown"
  node examples/service/dist/main.js --config "examples/service/$backend.json" --image "$fixtures/busybox.tar"
done
