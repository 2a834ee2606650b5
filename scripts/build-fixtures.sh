#!/usr/bin/env bash
# Builds the test fixture images from the host's static busybox, without Docker and without a
# registry, as docker-archive tarballs under .cache/fixtures/<hash of their bytes>/:
#   busybox.tar  one layer: busybox and its applet links, /tmp, /root, passwd; CMD ["/bin/sh"]
#   layered.tar  several layers: ENV, WORKDIR, ENTRYPOINT, CMD, STOPSIGNAL, whiteouts, an opaque
#                folder, a hard link, a symlink, a setuid file, numeric owners
# (what scripts/fixtures/layered.Dockerfile describes; @contexec/conformance/fixtures writes them,
# byte for byte the same on every run). Prints the fixture folder on stdout. Idempotent.
#   CONTEXEC_BUSYBOX  a static busybox to use instead of the one on PATH
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib.sh"

busybox=$(ensure_static_busybox)
cd "$root"
# The writer runs from the built packages; tsc -b only rebuilds what changed.
npx tsc -b packages/conformance >&2
out=$(node scripts/build-fixtures.mjs "$busybox" "$root/.cache/fixtures")
log "fixtures in $out (from $busybox)"
printf '%s\n' "$out"
