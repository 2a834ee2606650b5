#!/usr/bin/env bash
# Everything the tests and the demo need on this machine, installed or started only when
# missing: the runtimes (Docker Engine, Apptainer, a one-node SLURM cluster with accounting),
# squashfs-tools, the ordinary user of the unprivileged test run, the registry the pull tests
# start (not started here: the tests start their own), and the locally built fixture images.
# Which runtimes: CONTEXEC_RUNTIMES ("docker,apptainer,slurm", "apptainer", ...), each of which
# must then be set up or this fails; unset, every runtime that can be set up here is, and one
# that cannot is reported (its tests are then skipped by name, with the reason).
# Prints the runtimes that are ready on stdout, space-separated.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

selected_runtimes >/dev/null   # an unknown name stops here
strict=${CONTEXEC_RUNTIMES:+yes}
ready=""
for runtime in docker apptainer slurm; do
  if ! runtime_selected "$runtime"; then
    log "$runtime: left out by CONTEXEC_RUNTIMES=$CONTEXEC_RUNTIMES"
    continue
  fi
  case "$runtime" in
    apptainer) setup() { ensure_commands sqfstar:squashfs-tools unsquashfs:squashfs-tools && "$here/setup-apptainer.sh" >/dev/null; } ;;
    docker) setup() { "$here/setup-docker.sh"; } ;;
    # SLURM's jobs run Apptainer inside: it is set up too (once; the scripts check first).
    slurm) setup() { ensure_commands sqfstar:squashfs-tools && "$here/setup-apptainer.sh" >/dev/null && "$here/setup-slurm.sh" >&2; } ;;
  esac
  if (setup); then
    ready="$ready $runtime"
  elif [ -n "$strict" ]; then
    die "$runtime could not be set up (see above); CONTEXEC_RUNTIMES=$CONTEXEC_RUNTIMES requires it"
  else
    log "$runtime is not available here (see above): left out of the tests (each skipped by name, with the reason) and the demo. CONTEXEC_RUNTIMES=$runtime makes it required"
  fi
done
case " $ready " in *" apptainer "*) is_root && "$here/setup-test-user.sh" >/dev/null ;; esac
registry=", a local registry's binary"
# Without it the pull tests are skipped, each saying why; nothing else needs it.
"$here/setup-registry.sh" >/dev/null || {
  registry=""
  log "no local registry could be installed (see above): the pull tests will be skipped, each saying why"
}
"$here/build-fixtures.sh" >/dev/null
log "ready:${ready:- no runtime}${registry}, and the fixture images"
printf '%s\n' "${ready# }"   # for the caller: the runtimes set up here
