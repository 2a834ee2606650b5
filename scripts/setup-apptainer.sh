#!/usr/bin/env bash
# Installs Apptainer when no `apptainer` or `singularity` is on PATH.
# Debian 12 has no Apptainer package and sid's needs glibc >= 2.38, so this puts sid's
# apptainer plus its own libc into a private prefix and points the binaries at that libc.
# The system's libc is never touched. Idempotent; prints the path of the binary on stdout.
# Known gap: SIF-embedded ext3 overlays fail, since sid's offsetpreload.so (preloaded into the
# system's stdbuf/fuse2fs) needs GLIBC_2.38. --writable-tmpfs and directory overlays work.
#   CONTEXEC_APPTAINER_PREFIX  install here instead of "$(runtimes_dir)/apptainer"
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"

hint="install Apptainer >= 1.1 from https://apptainer.org/docs/admin/main/installation.html or your distribution, then run this again"
# Packages taken from sid: apptainer and the libraries its binaries need newer than bookworm's.
sid_pkgs="apptainer libc6 libseccomp2 libsqlite3-0"
# From the machine's own release: the helper programs apptainer runs from PATH.
host_pkgs="squashfs-tools squashfuse fuse2fs uidmap ca-certificates"

runs() { "$1" --version >/dev/null 2>&1; }

# 1. An Apptainer (or the older Singularity) is already there: use it.
for name in apptainer singularity; do
  if found="$(command -v "$name")" && runs "$found"; then
    log "already installed: $found ($("$found" --version 2>/dev/null))"
    readlink -f "$found"
    exit 0
  fi
done

prefix="${CONTEXEC_APPTAINER_PREFIX:-$(runtimes_dir)/apptainer}"
case "$prefix" in /*) ;; *) prefix="$PWD/$prefix" ;; esac
prefix="${prefix%/}"
bin="$prefix/usr/bin/apptainer"
owner_file=".contexec-apptainer"   # written first: this folder is ours to replace
done_file=".contexec-complete"     # written last: the install finished and ran

# /usr/local/bin/apptainer, so other tools find it. A symlink is enough: apptainer finds its
# prefix through /proc/self/exe, which resolves links.
link_into_path() {
  local link=/usr/local/bin/apptainer on_path
  is_root && [ -d /usr/local/bin ] && [ -w /usr/local/bin ] || return 0
  on_path="$(command -v apptainer || true)"
  if [ -n "$on_path" ] && [ "$(readlink -f "$on_path")" != "$(readlink -f "$bin")" ]; then
    log "not linking $link: $on_path is on PATH but does not run"
    return 0
  fi
  if [ -e "$link" ] && [ ! -L "$link" ]; then
    log "not linking: $link exists and is not a link"
    return 0
  fi
  # Only a missing or broken link is replaced, never one to another working install.
  if [ -L "$link" ] && [ "$(readlink -f "$link")" != "$(readlink -f "$bin")" ] && runs "$link"; then
    log "not linking: $link already points to a working $(readlink -f "$link")"
    return 0
  fi
  ln -sfn "$bin" "$link"
  log "linked $link -> $bin"
}

# A missing library or a too-old one (GLIBC_x not found) shows up here without running anything.
libs_resolve() {
  local out
  out="$("$prefix/usr/lib64/ld-linux-x86-64.so.2" --list "$1" 2>&1)" || { log "$out"; return 1; }
  if printf '%s\n' "$out" | grep -q 'not found'; then log "$out"; return 1; fi
}

# 2. Our private install is there and works: only make sure it can be found.
if [ -f "$prefix/$done_file" ] && runs "$bin"; then
  log "already installed: $bin ($("$bin" --version 2>/dev/null))"
  link_into_path
  printf '%s\n' "$bin"
  exit 0
fi

# 3. Install: needs root and Debian itself (derivatives' mirrors have no sid suite).
if ! is_debian || ! (. /etc/os-release && [ "${ID:-}" = debian ]); then
  die "no apptainer on PATH and this is not Debian; $hint"
fi
if ! is_root; then
  die "no apptainer on PATH and installing needs root (apt); run this as root, or $hint"
fi
arch="$(dpkg --print-architecture)"
# The loader path below is amd64's.
[ "$arch" = amd64 ] || die "private install is only set up for amd64, this is $arch; $hint"

apt_install patchelf $host_pkgs

parent="$(dirname "$prefix")"
mkdir -p "$parent"
# One run at a time: two at once would replace each other's folders.
exec 9>"$parent/.apptainer.lock"
flock 9
rm -rf "$parent"/.apptainer.stage.*   # left by a killed run

if [ -e "$prefix" ]; then
  if [ -f "$prefix/$owner_file" ] || [ -z "$(ls -A "$prefix")" ]; then
    log "removing unfinished or broken install at $prefix"
    rm -rf "$prefix"
  else
    die "$prefix exists and was not made by this script; remove it or set CONTEXEC_APPTAINER_PREFIX to a new folder"
  fi
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/contexec-apptainer.XXXXXX")"
stage="$(mktemp -d "$parent/.apptainer.stage.XXXXXX")"   # same filesystem, so mv is atomic
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
for f in "${patched[@]}"; do
  libs_resolve "$prefix/$f" || die "$prefix/$f cannot load its libraries (see above); left unfinished at $prefix"
done
version="$("$bin" --version 2>&1)" || die "$bin --version failed: $version"
touch "$prefix/$done_file"
log "installed $version at $prefix"
link_into_path
printf '%s\n' "$bin"
