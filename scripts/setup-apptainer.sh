#!/usr/bin/env bash
# Installs Apptainer when no `apptainer` or `singularity` that every user can run is on PATH.
# Debian 12 has no Apptainer package and sid's needs glibc >= 2.38, so this puts sid's
# apptainer plus its own libc into a prefix of its own and points the binaries at that libc.
# The system's libc is never touched. Idempotent; prints the path of the binary on stdout.
# As root the prefix is /opt/contexec/apptainer (every user can run it, as on a cluster), linked
# from /usr/local/bin/apptainer. Mode: user namespaces (unprivileged users get --userns; no
# setuid). --setuid asks for setuid-root mode, which Debian's package cannot give: the script
# says why, and accepts an existing setuid installation (`apptainer buildcfg`, starter-suid).
# Known gap: SIF-embedded ext3 overlays fail, since sid's offsetpreload.so (preloaded into the
# system's stdbuf/fuse2fs) needs GLIBC_2.38. --writable-tmpfs and directory overlays work.
#   CONTEXEC_APPTAINER_PREFIX  install here instead (default: /opt/contexec/apptainer as root)
#   CONTEXEC_APPTAINER_MODE    userns (default) or setuid (same as --setuid)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

usage="usage: $0 [--setuid]   (env: CONTEXEC_APPTAINER_PREFIX, CONTEXEC_APPTAINER_MODE=userns|setuid)"
mode="${CONTEXEC_APPTAINER_MODE:-userns}"
for arg in "$@"; do
  case "$arg" in
    --setuid) mode=setuid ;;
    --userns) mode=userns ;;
    -h | --help) printf '%s\n' "$usage" >&2; exit 0 ;;
    *) die "unknown argument $arg; $usage" ;;
  esac
done
case "$mode" in userns | setuid) ;; *) die "CONTEXEC_APPTAINER_MODE=$mode; use userns or setuid" ;; esac

hint="install Apptainer >= 1.1 from https://apptainer.org/docs/admin/main/installation.html or your distribution, then run this again"
# Packages taken from sid: apptainer and the libraries its binaries need newer than bookworm's.
sid_pkgs="apptainer libc6 libseccomp2 libsqlite3-0"
# From the machine's own release: the helper programs apptainer runs from PATH, by command.
host_cmds="mksquashfs:squashfs-tools unsquashfs:squashfs-tools squashfuse:squashfuse fuse2fs:fuse2fs newuidmap:uidmap /etc/ssl/certs/ca-certificates.crt:ca-certificates"

runs() { "$1" --version >/dev/null 2>&1; }

# True when every user can run FILE: the file and each folder above it are world-executable
# (an install under /root, mode 0700, runs for root only).
runs_for_everyone() {
  local f
  f="$(readlink -f "$1")" || return 1
  [ "$(( 0$(stat -c %a "$f") & 01 ))" -ne 0 ] || return 1
  while f="$(dirname "$f")"; [ "$f" != / ]; do
    [ "$(( 0$(stat -c %a "$f") & 01 ))" -ne 0 ] || return 1
  done
}

# The privilege modes an installation can give an unprivileged user: "setuid" when it was built
# with setuid support and its starter-suid is setuid root, else "userns" only.
install_modes() {
  local bin="$1" cfg libexec suid
  cfg="$("$bin" buildcfg 2>/dev/null || true)"
  libexec="$(printf '%s\n' "$cfg" | sed -n 's/^LIBEXECDIR=//p')"
  for suid in "$libexec"/apptainer/bin/starter-suid "$libexec"/singularity/bin/starter-suid; do
    if printf '%s\n' "$cfg" | grep -qE '^(APPTAINER|SINGULARITY)_SUID_INSTALL=1$' &&
      [ -u "$suid" ] && [ "$(stat -c %u "$suid")" = 0 ]; then
      printf 'setuid userns\n'
      return 0
    fi
  done
  printf 'userns\n'
}

# Refuses --setuid for an installation that cannot give it, saying exactly why.
check_mode() {
  local bin="$1"
  [ "$mode" = setuid ] || return 0
  case " $(install_modes "$bin") " in *" setuid "*) return 0 ;; esac
  local cfg
  cfg="$("$bin" buildcfg 2>/dev/null | grep -E '_SUID_INSTALL=' || printf 'no buildcfg')"
  die "setuid mode is not available with $bin ($cfg, no setuid-root starter-suid). $no_setuid"
}
# Why this script cannot set up setuid mode.
no_setuid="Debian's apptainer package (the one this script installs) is built without setuid support (APPTAINER_SUID_INSTALL=0) and ships no starter-suid. Its starter cannot simply be made setuid: starter-suid is a separate build (the suid build tags), and a setuid starter refuses an installation moved from its build-time prefix, as this private-libc prefix is. Setuid mode needs Apptainer built from source as root (./mconfig --with-suid; make -C builddir install) or a distribution's setuid package (Fedora/EPEL apptainer-suid); user namespace mode (the default) needs neither"

# In user namespace mode Apptainer mounts SIF images with squashfuse, which opens /dev/fuse as
# the calling user. The kernel and Debian's udev rule make it 0666; a machine without udev may
# have it 0600 ("fuse: failed to open /dev/fuse: Permission denied" for every user but root).
fuse_for_everyone() {
  [ -c /dev/fuse ] || { log "no /dev/fuse: ordinary users' SIF runs need the fuse kernel module (modprobe fuse)"; return 0; }
  [ "$(( 0$(stat -c %a /dev/fuse) & 06 ))" -eq 6 ] && return 0
  if is_root; then
    chmod 0666 /dev/fuse
    log "made /dev/fuse usable by every user (0666, as Debian's udev rule does): squashfuse needs it for ordinary users"
  else
    log "/dev/fuse is $(stat -c %A /dev/fuse): ordinary users cannot mount SIF images; as root: chmod 0666 /dev/fuse"
  fi
}

# 1. An Apptainer (or the older Singularity) every user can run is already there: use it.
#    One only its owner can run (under /root) is replaced below when it is ours.

for name in apptainer singularity; do
  if found="$(command -v "$name")" && runs "$found"; then
    if runs_for_everyone "$found" || ! is_root; then
      log "already installed: $found ($("$found" --version 2>/dev/null); modes: $(install_modes "$found"))"
      check_mode "$found"
      fuse_for_everyone
      readlink -f "$found"
      exit 0
    fi

    log "$found ($(readlink -f "$found")) runs for its owner only: installing one every user can run"
    break
  fi
done

# As root, a system prefix every user can run; otherwise the user's own.
if is_root; then default_prefix=/opt/contexec/apptainer; else default_prefix="$(runtimes_dir)/apptainer"; fi
prefix="${CONTEXEC_APPTAINER_PREFIX:-$default_prefix}"
case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac
prefix="${prefix%/}"
bin="$prefix/usr/bin/apptainer"
owner_file=".contexec-apptainer"   # written first: this folder is ours to replace
done_file=".contexec-complete"     # written last: the install finished and ran

# True when the binary FILE resolves to is inside a folder this script made.
made_by_us() {
  local f
  f="$(readlink -f "$1" 2>/dev/null)" || return 1
  while f="$(dirname "$f")"; [ "$f" != / ]; do
    [ -f "$f/$owner_file" ] && return 0
  done
  return 1
}

# /usr/local/bin/apptainer, so other tools and users find it. A symlink is enough: apptainer
# finds its prefix through /proc/self/exe, which resolves links. Replaced only when missing,
# broken, or pointing at an earlier install of this script that not every user can run.
link_into_path() {
  local link=/usr/local/bin/apptainer target
  is_root && [ -d /usr/local/bin ] && [ -w /usr/local/bin ] || return 0
  target="$(readlink -f "$link" 2>/dev/null || true)"
  [ "$target" = "$(readlink -f "$bin")" ] && return 0
  if [ -e "$link" ] && [ ! -L "$link" ]; then
    log "not linking: $link exists and is not a link"
    return 0
  fi
  if [ -L "$link" ] && runs "$link" && ! { made_by_us "$link" && ! runs_for_everyone "$link"; }; then
    log "not linking: $link already points to a working $target"
    return 0
  fi
  ln -sfn "$bin" "$link.contexec-new"
  mv -T "$link.contexec-new" "$link"   # atomic: a test running now sees the old or the new
  log "linked $link -> $bin${target:+ (was $target)}"
}

# The new install works: its libraries load, it runs, and a user other than root can run it.
check_install() {
  local f out
  for f in "$@"; do
    libs_resolve "$prefix/$f" || die "$prefix/$f cannot load its libraries (see above); left unfinished at $prefix"
  done
  out="$("$bin" --version 2>&1)" || die "$bin --version failed: $out"
  if is_root && [ "${prefix#/root/}" = "$prefix" ] && command -v setpriv >/dev/null 2>&1; then
    out="$(setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" --version 2>&1)" ||
      die "$bin does not run for an unprivileged user (nobody): $out"
  fi
}

# A missing library or a too-old one (GLIBC_x not found) shows up here without running anything.
libs_resolve() {
  local out
  out="$("$prefix/usr/lib64/ld-linux-x86-64.so.2" --list "$1" 2>&1)" || { log "$out"; return 1; }
  if printf '%s\n' "$out" | grep -q 'not found'; then log "$out"; return 1; fi
}

# 2. Our install is there and works: only make sure it can be found.
if [ -f "$prefix/$done_file" ] && runs "$bin"; then
  log "already installed: $bin ($("$bin" --version 2>/dev/null))"
  check_mode "$bin"
  fuse_for_everyone
  link_into_path
  printf '%s\n' "$bin"
  exit 0
fi

# 3. Install: needs root and Debian itself (derivatives' mirrors have no sid suite).
os="$(os_release)"
case "$os" in
  debian\ *) ;;
  ubuntu\ 22.04 | ubuntu\ 24.04)
    die "no apptainer on PATH. On $os install it from the Apptainer PPA: sudo add-apt-repository -y ppa:apptainer/ppa && sudo apt-get update && sudo apt-get install -y apptainer (Ubuntu 24.04 restricts unprivileged user namespaces through AppArmor; the PPA's package installs the AppArmor profile that allows them for apptainer). This script only installs on Debian, whose sid suite it takes the package from"
    ;;
  ubuntu\ *) die "no apptainer on PATH, and $os is not a release this project checks (22.04, 24.04); $hint" ;;
  *) die "no apptainer on PATH and this is $os, not Debian; $hint" ;;
esac
is_apt_system || die "no apptainer on PATH and no apt-get/dpkg here; $hint"
if ! is_root; then
  die "no apptainer on PATH and installing needs root (apt); run this as root (sudo $0), ask your administrator, or $hint"
fi
[ "$mode" = userns ] || die "setuid mode cannot be installed by this script. $no_setuid"
arch="$(dpkg --print-architecture)"
# The loader path below is amd64's.
[ "$arch" = amd64 ] || die "private install is only set up for amd64, this is $arch; $hint"

# shellcheck disable=SC2086
ensure_commands patchelf:patchelf $host_cmds
umask 022   # every user reads and runs what is installed

parent="$(dirname "$prefix")"
mkdir -p "$parent"
# One run at a time: two at once would replace each other's folders.
exec 9>"$parent/.apptainer.lock"
flock 9
rm -rf "$parent"/.apptainer.stage.*   # left by a killed run

if [ -e "$prefix" ]; then
  # A finished install is never removed here, even when it does not run for us: others may be
  # running it (and a private mount namespace may only hide it from this process).
  if [ -f "$prefix/$done_file" ]; then
    die "$prefix holds a finished install that does not run here ($("$bin" --version 2>&1 | tail -n 1)); not removing it, since it may be in use. Remove it yourself to reinstall, or set CONTEXEC_APPTAINER_PREFIX to another folder"
  fi
  if [ -f "$prefix/$owner_file" ] || [ -z "$(ls -A "$prefix")" ]; then
    log "removing unfinished or broken install at $prefix"
    rm -rf "$prefix"
  else
    die "$prefix exists and was not made by this script; remove it or set CONTEXEC_APPTAINER_PREFIX to a new folder"
  fi
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/contexec-apptainer.XXXXXX")"
stage="$(mktemp -d "$parent/.apptainer.stage.XXXXXX")"   # same filesystem, so mv is atomic
chmod 755 "$stage"   # mktemp made it 0700: it becomes the prefix every user runs from
trap 'rm -rf "$work" "$stage"' EXIT

# The mirror this machine already uses, from the stanza for its release (not the security one).
codename="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-bookworm}")"
mirror=""
if [ -r /etc/apt/sources.list.d/debian.sources ]; then
  mirror="$(awk -v rel="$codename" '
    BEGIN { RS = ""; FS = "\n" }
    {
      uris = ""; suites = ""; types = ""; enabled = "yes"
      for (i = 1; i <= NF; i++) {
        line = $i; key = tolower(line); sub(/:.*/, "", key); sub(/^[^:]*:[ \t]*/, "", line)
        if (key == "uris") uris = line
        else if (key == "suites") suites = " " line " "
        else if (key == "types") types = " " line " "
        else if (key == "enabled") enabled = tolower(line)
      }
      if (enabled != "no" && types ~ /[ \t]deb[ \t]/ && suites ~ ("[ \t]" rel "[ \t]")) {
        split(uris, u, /[ \t]+/); print u[1]; exit
      }
    }' /etc/apt/sources.list.d/debian.sources)"
fi
if [ -z "$mirror" ] && [ -r /etc/apt/sources.list ]; then
  mirror="$(sed -e 's/\[[^]]*\]//' /etc/apt/sources.list |
    awk -v rel="$codename" '$1 == "deb" && $3 == rel { print $2; exit }')"
fi
case "$mirror" in http://* | https://*) ;; *) mirror="http://deb.debian.org/debian" ;; esac
mirror="${mirror%/}"
log "fetching $sid_pkgs from $mirror sid"

# A private sources list and package lists: the system's apt setup stays as it was.
mkdir -p "$work/lists/partial" "$work/debs"
chmod 755 "$work"
# apt downloads as _apt when it can; let it, instead of warning.
if id _apt >/dev/null 2>&1; then chown _apt "$work/lists/partial" "$work/debs"; fi
printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s sid main\n' "$mirror" >"$work/sid.list"
apt_opts=(-q -o "Dir::Etc::sourcelist=$work/sid.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$work/lists")
apt-get "${apt_opts[@]}" update >/dev/null || die "apt-get update of Debian sid from $mirror failed"
# shellcheck disable=SC2086
(cd "$work/debs" && apt-get "${apt_opts[@]}" download $sid_pkgs >/dev/null) ||
  die "apt-get download $sid_pkgs failed"

touch "$stage/$owner_file"
for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$stage"; done
log "apptainer package: $(dpkg-deb -f "$work"/debs/apptainer_*.deb Version)"

# Paths are those of the final place: the stage is moved there before anything runs.
libdir="$(dirname "$(cd "$stage" && find usr/lib -name libc.so.6 -print -quit)")"
[ -n "$libdir" ] && [ "$libdir" != . ] || die "libc.so.6 not found in the sid libc6 package"
[ -e "$stage/usr/lib64/ld-linux-x86-64.so.2" ] || die "the sid libc6 package has no usr/lib64/ld-linux-x86-64.so.2"
interp="$prefix/usr/lib64/ld-linux-x86-64.so.2"
patched=()
for f in "$stage"/usr/bin/* "$stage/$libdir"/apptainer/bin/*; do
  [ -f "$f" ] && [ ! -L "$f" ] || continue
  patchelf --print-interpreter "$f" >/dev/null 2>&1 || continue   # scripts, static binaries
  # RPATH, not RUNPATH: it also applies to the libraries' own needs (sqlite needs sid's libm).
  patchelf --set-interpreter "$interp" --force-rpath --set-rpath "$prefix/$libdir" "$f"
  patched+=("${f#"$stage"/}")
done
[ "${#patched[@]}" -ge 2 ] || die "expected apptainer and starter to patch, found: ${patched[*]}"
log "patched: ${patched[*]}"

# Apptainer computes its prefix from the binary's path: PREFIX/usr for bin/apptainer, but
# PREFIX/usr/lib for lib/x86_64-linux-gnu/apptainer/bin/starter. /etc/apptainer and
# /var/lib/apptainer are looked up under those prefixes.
ln -s ../etc "$stage/usr/etc"
ln -s ../var "$stage/usr/var"
ln -s ../../etc "$stage/usr/lib/etc"
ln -s ../../var "$stage/usr/lib/var"

# Without systemd as init, "systemd cgroups = yes" makes every cgroup option fatal
# ("cannot use systemd cgroups manager, systemd not running as init on this host").
conf="$stage/etc/apptainer/apptainer.conf"
if [ ! -d /run/systemd/system ]; then
  sed -i -E 's/^[#[:space:]]*systemd cgroups[[:space:]]*=.*/systemd cgroups = no/' "$conf"
  grep -qx 'systemd cgroups = no' "$conf" || printf 'systemd cgroups = no\n' >>"$conf"
fi

mv "$stage" "$prefix"
check_install "${patched[@]}"
version="$("$bin" --version 2>&1)"
touch "$prefix/$done_file"
log "installed $version at $prefix (modes: $(install_modes "$bin"))"
fuse_for_everyone
link_into_path
printf '%s\n' "$bin"
