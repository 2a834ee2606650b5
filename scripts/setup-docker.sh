#!/usr/bin/env bash
# Makes a Docker Engine available: installs docker.io when no dockerd is present and starts the
# daemon when its socket does not answer. Idempotent; safe to run before every test run.
# It never starts a second daemon: where systemd manages Docker it asks systemd, where a dockerd
# is already running (but does not answer) it says so and stops, and a DOCKER_HOST that points
# elsewhere is only checked, never started.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

default_sock=/var/run/docker.sock
host="${DOCKER_HOST:-unix://$default_sock}"
sock="${host#unix://}"

docker_answers() {
  # The daemon answers `docker version` (server part); without the client, the socket must exist.
  if command -v docker >/dev/null 2>&1; then
    timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  else
    [ -S "$sock" ]
  fi
}

if docker_answers; then
  log "Docker Engine is running ($host)"
  exit 0
fi

if [ "$host" != "unix://$default_sock" ] && [ "$sock" != "$default_sock" ]; then
  die "no Docker daemon answers at DOCKER_HOST=$host; this script only starts the local daemon at $default_sock. Start the one DOCKER_HOST names, or unset DOCKER_HOST"
fi

ensure_commands dockerd:docker.io docker:docker.io

systemd_manages_docker() {
  [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 &&
    systemctl list-unit-files docker.service docker.socket 2>/dev/null | grep -qE '^docker\.(service|socket)'
}

wait_for_daemon() {
  for _ in $(seq 1 120); do
    if docker_answers; then
      log "Docker Engine is running"
      return 0
    fi
    sleep 0.5
  done
  return 1
}

if systemd_manages_docker; then
  is_root || die "Docker is managed by systemd here and is not running: sudo systemctl start docker (and add your user to the docker group: sudo usermod -aG docker $(id -un))"
  log "starting Docker through systemd (systemctl start docker)"
  systemctl start docker || die "systemctl start docker failed; see: journalctl -u docker"
  wait_for_daemon || die "systemd started docker, but it did not answer within 60 s; see: journalctl -u docker"
  exit 0
fi

if [ -S "$sock" ] && ! is_root && ! [ -r "$sock" -a -w "$sock" ]; then
  die "$(id -un) may not use the Docker daemon at $sock ($(stat -c '%U:%G %A' "$sock")): join its group (sudo usermod -aG $(stat -c %G "$sock") $(id -un), then log in again), or use rootless Docker"
fi
if pid=$(pgrep -x dockerd 2>/dev/null | head -n 1) && [ -n "$pid" ]; then
  die "a dockerd is running (pid $pid) but does not answer at $sock; not starting a second one. Check its log, or the socket it listens on"
fi

if ! is_root; then
  die "the Docker daemon is not running at $sock; start it (sudo dockerd &), or ask your administrator, and join the docker group"
fi

# No systemd on these machines: start the daemon ourselves, detached from this shell so it
# outlives the test run, and wait for it to answer.
log "starting dockerd (log: /var/log/contexec-dockerd.log)"
nohup setsid dockerd >/var/log/contexec-dockerd.log 2>&1 </dev/null &
if wait_for_daemon; then exit 0; fi
tail -n 20 /var/log/contexec-dockerd.log >&2 || true
die "dockerd did not answer within 60 s; see /var/log/contexec-dockerd.log"
