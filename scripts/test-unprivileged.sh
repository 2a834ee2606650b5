#!/usr/bin/env bash
# Runs, as an ordinary user, what an HPC user runs: the vitest project "unprivileged" (the
# Apptainer conformance suite and probe, every test of packages/cli, test/unprivileged/). The user
# is contexec-test (scripts/setup-test-user.sh), switched to with setpriv, with a HOME, TMPDIR and
# XDG_CACHE_HOME of its own made for this run and removed after it. Needs root to switch users.
# Extra arguments go to vitest.
#   CONTEXEC_UNPRIVILEGED_REPORT=FILE  also writes vitest's JSON report there
#   CONTEXEC_FIXTURES=DIR              fixture folder (default: scripts/build-fixtures.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib.sh"

is_root || die "switching to the test user needs root; as an ordinary user, run the same tests directly: CONTEXEC_UNPRIVILEGED_RUN=1 npx vitest run --project unprivileged"
ensure_commands setpriv:util-linux unshare:util-linux
user=$("$here/setup-test-user.sh")
fixtures=${CONTEXEC_FIXTURES:-$("$here/build-fixtures.sh")}

# The run's own folders, under a folder every user can pass through.
run=$(mktemp -d "${CONTEXEC_UNPRIVILEGED_TMP:-/tmp}/contexec-unprivileged.XXXXXX")
trap 'rm -rf "$run"' EXIT
chmod 755 "$run"
install -d -o "$user" -g "$user" -m 700 "$run/home" "$run/tmp" "$run/cache" "$run/out"

as_user() { setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"; }
readable_by_user() {
  as_user sh -c 'test -r "$1/package.json" && test -r "$1/node_modules/vitest/vitest.mjs" && test -r "$2/busybox.tar"' \
    sh "$1" "$2" 2>/dev/null
}

# The user must read the repository and the fixtures. A clone under a private folder (/root is
# 0700) is shown to it at $run/repo instead, by a bind mount in a private mount namespace.
repo=$root
namespace=()
if ! readable_by_user "$root" "$fixtures"; then
  case "$fixtures" in "$root"/*) ;; *) die "$user cannot read the fixtures in $fixtures; set CONTEXEC_FIXTURES to a folder it can read" ;; esac
  repo="$run/repo"
  mkdir "$repo"
  fixtures="$repo/${fixtures#"$root"/}"
  namespace=(unshare --mount --propagation private -- sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh "$root" "$repo")
  log "$user cannot reach $root; showing it at $repo in a private mount namespace"
fi

report=()
if [ -n "${CONTEXEC_UNPRIVILEGED_REPORT:-}" ]; then
  report=(--reporter=default --reporter=json "--outputFile.json=$run/out/report.json")
fi
log "running the unprivileged tests as $user (uid $(id -u "$user")), HOME=$run/home"
status=0
"${namespace[@]}" setpriv --reuid="$user" --regid="$user" --init-groups -- \
  env -i PATH="$PATH" LANG=C.UTF-8 USER="$user" LOGNAME="$user" \
  HOME="$run/home" TMPDIR="$run/tmp" XDG_CACHE_HOME="$run/cache" CI="${CI:-}" \
  CONTEXEC_UNPRIVILEGED_RUN=1 CONTEXEC_RUNTIMES=apptainer CONTEXEC_FIXTURES="$fixtures" \
  sh -c 'cd "$1" && shift && exec node node_modules/vitest/vitest.mjs run --configLoader runner --project unprivileged "$@"' \
  sh "$repo" "${report[@]}" "$@" || status=$?
if [ -n "${CONTEXEC_UNPRIVILEGED_REPORT:-}" ]; then
  cp "$run/out/report.json" "$CONTEXEC_UNPRIVILEGED_REPORT" 2>/dev/null || log "the unprivileged run wrote no report"
fi
exit "$status"
