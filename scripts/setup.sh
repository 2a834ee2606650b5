#!/usr/bin/env bash
# Everything the tests and the demo need on this machine, installed or started only when
# missing: Docker Engine, Apptainer, squashfs-tools, a one-node SLURM cluster with accounting,
# and the locally built fixture images.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

"$here/setup-docker.sh"
apt_install squashfs-tools
"$here/setup-apptainer.sh" >/dev/null
"$here/setup-slurm.sh"
"$here/build-fixtures.sh" >/dev/null
log "ready: Docker, Apptainer, SLURM and fixture images"
