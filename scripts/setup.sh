#!/usr/bin/env bash
# Everything the tests and the demo need on this machine, installed or started only when
# missing: Docker Engine, Apptainer, squashfs-tools, and the locally built fixture images.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

"$here/setup-docker.sh"
ensure_commands sqfstar:squashfs-tools unsquashfs:squashfs-tools
"$here/setup-apptainer.sh" >/dev/null
"$here/build-fixtures.sh" >/dev/null
log "ready: Docker, Apptainer and fixture images"
