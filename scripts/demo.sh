#!/usr/bin/env bash
# `npm run demo`: the same job, unchanged, on Docker and then on Apptainer: through the library
# (examples/hello, examples/service, examples/workflow: one config value differs) and through
# the contexec CLI (a job file, its plan, its runs, a DockSing file).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/ensure-node-modules.sh
scripts/setup.sh
npx tsc -b
fixtures=$(scripts/build-fixtures.sh)
contexec() { node "$root/packages/cli/dist/main.js" "$@"; }

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

demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
for backend in docker apptainer; do
  echo
  echo "== examples/workflow on $backend: split -> count -> report, each step's output the next one's input"
  node examples/workflow/dist/main.js --config "examples/workflow/$backend.json" \
    --image "$fixtures/busybox.tar" --work "$demo/workflow-$backend"
done

cp -r packages/cli/examples/. "$demo/"
cp "$fixtures/busybox.tar" "$demo/"
cd "$demo"
echo
echo "== contexec: a job file (job.yaml)"
cat job.yaml
echo
echo "== contexec run job.yaml --runtime apptainer --dry-run: the plan, as a bash script"
contexec run job.yaml --runtime apptainer --dry-run
for backend in docker apptainer; do
  echo
  echo "== contexec run job.yaml --runtime $backend"
  rm -rf out
  contexec run job.yaml --runtime "$backend" && code=0 || code=$?
  echo "exit code $code; out/count.txt: $(cat out/count.txt)"
done
echo
echo "== a DockSing file, unchanged (docksing.yaml)"
cat docksing.yaml
for backend in docker apptainer; do
  echo
  echo "== contexec run docksing.yaml --runtime $backend"
  contexec run docksing.yaml --runtime "$backend"
done
echo
echo "== contexec info"
contexec info
