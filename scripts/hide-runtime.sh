#!/usr/bin/env bash
# Runs a command as if a runtime were not installed here: in a private mount namespace whose view
# of the runtime's programs (every one on PATH) and of Docker's socket is /dev/null. Nothing on
# the host changes; a running daemon keeps serving everyone else. Needs root (unshare --mount).
#   scripts/hide-runtime.sh docker env CONTEXEC_RUNTIMES=apptainer npm test
#   scripts/hide-runtime.sh apptainer npm run demo
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

[ $# -ge 2 ] || die "usage: $0 docker|apptainer COMMAND..."
runtime=$1
shift
case "$runtime" in
  docker) names="docker dockerd containerd runc docker-init docker-proxy" ;;
  apptainer) names="apptainer singularity run-singularity" ;;
  *) die "unknown runtime $runtime: docker or apptainer" ;;
esac
is_root || die "hiding programs needs a private mount namespace, which needs root"

hidden=()
IFS=: read -r -a dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
  for name in $names; do
    [ -e "$dir/$name" ] && hidden+=("$dir/$name")
  done
done
# Where the set-up would install the runtime is made private and empty too, so that a set-up
# run in here installs into a throwaway tmpfs, never over (or away) the host's install.
private=()
if [ "$runtime" = apptainer ]; then
  for d in /opt/contexec "$(runtimes_dir)"; do [ -d "$d" ] && private+=("$d"); done
fi
if [ "$runtime" = docker ]; then
  for s in /var/run/docker.sock /run/docker.sock; do [ -S "$s" ] && hidden+=("$s"); done
  export DOCKER_HOST=unix:///nonexistent/docker.sock
fi
log "hiding $runtime: ${hidden[*]:-nothing found}${private:+; empty: ${private[*]}}"
exec unshare --mount --propagation private -- bash -c '
  set -e
  n=$1; shift
  for p in "${@:1:$n}"; do mount --bind /dev/null "$p"; done
  shift "$n"
  m=$1; shift
  for d in "${@:1:$m}"; do mount -t tmpfs -o mode=755 contexec-hidden "$d"; done
  shift "$m"
  exec "$@"' bash "${#hidden[@]}" "${hidden[@]}" "${#private[@]}" "${private[@]}" "$@"
