# Shared helpers for the set-up scripts. Sourced, not run.
# Every script here is idempotent: it checks first and only installs or starts what is missing.
# What is missing is decided by the commands a script needs (`command -v`), never by package
# names: a tool installed another way (by hand, by another package, by the admins) counts.

log() { printf '[contexec setup] %s\n' "$*" >&2; }
die() { printf '[contexec setup] error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# The os-release file (CONTEXEC_OS_RELEASE names another, to check the scripts' answers for
# other distributions).
os_release_file() { printf '%s\n' "${CONTEXEC_OS_RELEASE:-/etc/os-release}"; }

# The distribution, from os-release: "debian 12", "ubuntu 24.04", "fedora 40", or "unknown".
os_release() {
  (
    . "$(os_release_file)" 2>/dev/null || { printf 'unknown\n'; exit 0; }
    printf '%s %s\n' "${ID:-unknown}" "${VERSION_ID:-}"
  )
}

# Debian and Ubuntu (and their derivatives) are installed with apt; nothing else is.
is_apt_system() {
  command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 || return 1
  (. "$(os_release_file)" 2>/dev/null && case " ${ID:-} ${ID_LIKE:-} " in *" debian "* | *" ubuntu "*) exit 0 ;; esac; exit 1)
}

# have WHAT: WHAT is a command on PATH, or an absolute path that exists.
have() {
  case "$1" in
    /*) [ -e "$1" ] ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

# ensure_commands WHAT:PACKAGE... : for each WHAT (a command, or an absolute path) that is
# missing, installs the Debian/Ubuntu PACKAGE that provides it. What is present is left alone.
# When this machine cannot install (not root, not Debian/Ubuntu, no network), it says exactly
# what to install and stops.
ensure_commands() {
  local spec what pkg missing="" pkgs=""
  for spec in "$@"; do
    what="${spec%%:*}" pkg="${spec#*:}"
    have "$what" && continue
    missing="$missing $what"
    case " $pkgs " in *" $pkg "*) ;; *) pkgs="$pkgs $pkg" ;; esac
  done
  [ -z "$pkgs" ] && return 0
  install_packages "$missing" $pkgs
  for spec in "$@"; do
    what="${spec%%:*}" pkg="${spec#*:}"
    have "$what" || die "installing $pkg did not provide $what (is $what outside PATH=$PATH?)"
  done
}

# install_packages "WHY" PKG... : apt-get install, refusing anything that would remove a package.
install_packages() {
  local why="$1"
  shift
  local list="$*"
  if ! is_apt_system; then
    die "missing:$why. This is $(os_release), not Debian or Ubuntu: install what provides them (the Debian packages are: $list), then run this again"
  fi
  if ! is_root; then
    die "missing:$why. Installing needs root: sudo apt-get install -y $list (or ask your administrator), then run this again"
  fi
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine may have empty package lists: update once, only when they do not know a package.
  if ! apt-get -s install "$@" >/dev/null 2>&1; then
    log "updating the package lists"
    apt-get update >/dev/null 2>&1 ||
      die "apt-get update failed (no network?). Install by hand: apt-get install -y $list"
  fi
  local plan
  plan="$(apt-get -s -y --no-install-recommends install "$@" 2>&1)" ||
    die "apt-get cannot install $list: $(printf '%s\n' "$plan" | grep -E '^E:' | head -n 3)"
  # Never remove anything: busybox-static, for one, replaces busybox.
  local removed
  removed="$(printf '%s\n' "$plan" | awk '$1 == "Remv" { print $2 }' | tr '\n' ' ')"
  if [ -n "$removed" ]; then
    die "installing $list would remove: $removed(they conflict). Not done: install it yourself if that is fine (apt-get install $list), or provide$why another way"
  fi
  log "installing: $list (for$why)"
  apt-get install -y --no-install-recommends --no-remove "$@" >/dev/null ||
    die "apt-get install $list failed (no network?). Install by hand: apt-get install -y $list"
}

# Where per-user runtime installs live. Overridable.
runtimes_dir() {
  printf '%s\n' "${CONTEXEC_RUNTIMES_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/contexec/runtimes}"
}

# The runtimes the tests and the demo use: CONTEXEC_RUNTIMES ("docker,apptainer,slurm",
# "apptainer", "docker", ...), else all three. Prints one name a line; dies on an unknown name.
selected_runtimes() {
  local r
  for r in $(printf '%s' "${CONTEXEC_RUNTIMES:-docker,apptainer,slurm}" | tr ',' ' '); do
    case "$r" in
      docker | apptainer | slurm) printf '%s\n' "$r" ;;
      *) die "CONTEXEC_RUNTIMES names \"$r\"; known: docker, apptainer, slurm (comma-separated)" ;;
    esac
  done
}
runtime_selected() { selected_runtimes | grep -qx "$1"; }

# A static busybox (runs in any image root), on stdout: $CONTEXEC_BUSYBOX, else busybox on PATH,
# else /bin/busybox. Nothing when there is none.
find_static_busybox() {
  local c
  for c in "${CONTEXEC_BUSYBOX:-}" "$(command -v busybox 2>/dev/null || true)" /bin/busybox /usr/bin/busybox; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    # ldd: "not a dynamic executable" (glibc < 2.35) or "statically linked".
    case "$(LC_ALL=C ldd "$c" 2>&1 || true)" in
      *"not a dynamic executable"* | *"statically linked"*) ;;
      *) continue ;;
    esac
    printf '%s\n' "$c"
    return 0
  done
  return 1
}

# Makes a static busybox available (for the fixture images and the Apptainer probe), printing its
# path. busybox-static conflicts with busybox (apt would remove it): that is refused, with the fix.
ensure_static_busybox() {
  local found
  if found="$(find_static_busybox)"; then
    printf '%s\n' "$found"
    return 0
  fi
  [ -z "${CONTEXEC_BUSYBOX:-}" ] || die "CONTEXEC_BUSYBOX=$CONTEXEC_BUSYBOX is not a static executable"
  if is_apt_system && dpkg-query -W -f='${Status}' busybox 2>/dev/null | grep -q 'install ok installed'; then
    die "the fixture images need a static busybox, and the installed busybox package is dynamic. Installing busybox-static would remove busybox (they conflict), so this script does not. Either run: apt-get install busybox-static (replaces busybox), or set CONTEXEC_BUSYBOX to a static busybox binary"
  fi
  install_packages " a static busybox" busybox-static
  find_static_busybox || die "busybox-static is installed but no static busybox is on PATH"
}

# tcp_answers HOST PORT : whether something accepts TCP connections there (bash's /dev/tcp, no curl needed).
tcp_answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
