# Shared helpers for the set-up scripts. Sourced, not run.
# Every script here is idempotent: it checks first and only installs or starts what is missing.

log() { printf '[contexec setup] %s\n' "$*" >&2; }
die() { printf '[contexec setup] error: %s\n' "$*" >&2; exit 1; }

is_debian() { [ -r /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; }
is_root() { [ "$(id -u)" = 0 ]; }

# apt_install PKG... : installs the Debian packages that are not installed yet.
# When this machine cannot do it (not root, not Debian) it says exactly what to install instead.
apt_install() {
  missing=""
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing="$missing $p"
    fi
  done
  [ -z "$missing" ] && return 0
  if ! is_debian; then
    die "this is not a Debian system; install the equivalent of:$missing (Debian package names), then run this again"
  fi
  if ! is_root; then
    die "missing Debian packages:$missing; run as root, or: sudo apt-get install -y$missing"
  fi
  log "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine may have empty package lists; update once, only when needed.
  if ! apt-get install -y --no-install-recommends $missing >/dev/null 2>&1; then
    apt-get update >/dev/null 2>&1 || die "apt-get update failed"
    apt-get install -y --no-install-recommends $missing >/dev/null || die "apt-get install$missing failed"
  fi
}

# Where private runtime installs live (Apptainer's private prefix). Overridable.
runtimes_dir() {
  printf '%s\n' "${CONTEXEC_RUNTIMES_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/contexec/runtimes}"
}

# tcp_answers HOST PORT : whether something accepts TCP connections there (bash's /dev/tcp, no curl needed).
tcp_answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
