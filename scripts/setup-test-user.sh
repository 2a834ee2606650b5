#!/usr/bin/env bash
# Creates the ordinary user the unprivileged test run uses (default contexec-test): a system
# user with its own group, no password, no login shell and no home folder (each run gives it a
# fresh HOME, TMPDIR and cache). Idempotent; prints the user name.
#   CONTEXEC_TEST_USER  another name
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

user="${CONTEXEC_TEST_USER:-contexec-test}"
if id -u "$user" >/dev/null 2>&1; then
  [ "$(id -u "$user")" != 0 ] || die "$user is uid 0; the unprivileged run needs an ordinary user"
  printf '%s\n' "$user"
  exit 0
fi
is_root || die "the user $user does not exist and making it needs root: sudo useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $user"
ensure_commands useradd:passwd setpriv:util-linux
useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
log "created the test user $user (uid $(id -u "$user"))"
printf '%s\n' "$user"
