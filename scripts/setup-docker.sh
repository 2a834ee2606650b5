#!/usr/bin/env bash
# Makes a Docker Engine available: installs docker.io when no dockerd is present and starts the
# daemon when its socket does not answer. Idempotent; safe to run before every test run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

sock="${DOCKER_HOST:-unix:///var/run/docker.sock}"
sock="${sock#unix://}"

docker_answers() {
  # The daemon answers _ping with "OK"; curl may be absent, so use the docker client if present.
  if command -v docker >/dev/null 2>&1; then
    timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  else
    [ -S "$sock" ]
  fi
}

if docker_answers; then
  log "Docker Engine is running"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  ensure_commands dockerd:docker.io
fi
command -v dockerd >/dev/null 2>&1 || die "dockerd not found after installing docker.io"

if ! is_root; then
  die "the Docker daemon is not running at $sock; start it (sudo dockerd &, or sudo systemctl start docker), or add your user to the docker group"
fi

# No systemd on these machines: start the daemon ourselves, detached from this shell so it
# outlives the test run, and wait for it to answer.
log "starting dockerd (log: /var/log/contexec-dockerd.log)"
nohup setsid dockerd >/var/log/contexec-dockerd.log 2>&1 </dev/null &
for _ in $(seq 1 120); do
  if docker_answers; then
    log "Docker Engine is running"
    exit 0
  fi
  sleep 0.5
done
tail -n 20 /var/log/contexec-dockerd.log >&2 || true
die "dockerd did not answer within 60 s; see /var/log/contexec-dockerd.log"
