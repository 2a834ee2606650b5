#!/usr/bin/env bash
# `npm run demo`: the same job, unchanged, on Docker and then on Apptainer (and as SLURM jobs):
# through the library (examples/hello, examples/service, examples/workflow: one config value
# differs; the workflow also on SLURM) and through the contexec CLI (a job file, its plan, its
# runs, a DockSing file).
# CONTEXEC_RUNTIMES=apptainer (or docker) runs it on that runtime alone; unset, on every runtime
# this machine has or can install.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/ensure-node-modules.sh
ready=$(scripts/setup.sh)
[ -n "$ready" ] || { echo "no container runtime could be set up here (see above)" >&2; exit 1; }
npx tsc -b
fixtures=$(scripts/build-fixtures.sh)
contexec() { node "$root/packages/cli/dist/main.js" "$@"; }

for backend in docker apptainer slurm; do
  case " $ready " in *" $backend "*) ;; *) echo "== $backend: not set up here, left out of the demo" ;; esac
done
# The container runtimes, for the examples that start services (SLURM runs the batch parts below).
local_ready=$(for b in $ready; do [ "$b" = slurm ] || printf '%s ' "$b"; done)

for backend in $local_ready; do
  echo
  echo "== examples/hello on $backend (config: examples/hello/$backend.json)"
  node examples/hello/dist/main.js --config "examples/hello/$backend.json" --image "$fixtures/layered.tar"
done
for backend in $local_ready; do
  echo
  echo "== examples/service on $backend: a service, a batch step against it, teardown"
  node examples/service/dist/main.js --config "examples/service/$backend.json" --image "$fixtures/busybox.tar"
done

demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
# SLURM jobs' folders (a folder every node sees: this machine is the test cluster's only node).
export CONTEXEC_SLURM_WORKDIR="$demo/slurm-jobs"
for backend in $ready; do
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
# The test cluster reserves CPUs without confining a job to them (ConstrainCores=no): the job's
# CPU limit cannot be honoured there, so on SLURM it runs without it, with a warning.
options_for() { if [ "$1" = slurm ]; then echo "--set runtime.unsupported=ignore"; fi; }
planned=$(case " $ready " in *" apptainer "*) echo apptainer ;; *" docker "*) echo docker ;; *) echo slurm ;; esac)
echo "== contexec run job.yaml --runtime $planned --dry-run: the plan, as a bash script"
# shellcheck disable=SC2046 # the options are words
contexec run job.yaml --runtime "$planned" --dry-run $(options_for "$planned")
for backend in $ready; do
  echo
  echo "== contexec run job.yaml --runtime $backend $(options_for "$backend")"
  rm -rf out
  # shellcheck disable=SC2046 # the options are words
  contexec run job.yaml --runtime "$backend" $(options_for "$backend") && code=0 || code=$?
  echo "exit code $code; out/count.txt: $(cat out/count.txt)"
done
echo
echo "== a DockSing file, unchanged (docksing.yaml)"
cat docksing.yaml
for backend in $ready; do
  echo
  echo "== contexec run docksing.yaml --runtime $backend"
  contexec run docksing.yaml --runtime "$backend"
done
echo
echo "== contexec info"
contexec info
