#!/usr/bin/env bash
# Builds the test fixture images locally from busybox-static (nothing is pulled) and saves them
# as docker-archive tarballs under .cache/fixtures/<hash of these scripts>/:
#   busybox.tar  one layer: busybox and its applet links, /tmp, /root, passwd; CMD ["/bin/sh"]
#   layered.tar  several layers: ENV, WORKDIR, ENTRYPOINT, CMD, whiteouts, an opaque folder,
#                a hard link to a lower layer's file, a symlink, a setuid file, numeric owners
# Prints the fixture folder on stdout. Idempotent: a folder that is complete is reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib.sh"

ensure_static_busybox >/dev/null
"$here/setup-docker.sh"

stamp=$(cat "$0" "$here/fixtures/layered.Dockerfile" | sha256sum | cut -c1-12)
out="$root/.cache/fixtures/$stamp"
if [ -f "$out/complete" ]; then
  printf '%s\n' "$out"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tag="contexec-fixture/busybox:$stamp"
ltag="contexec-fixture/layered:$stamp"

# busybox root folder: the static binary and one link per applet.
rf="$work/root"
mkdir -p "$rf/bin" "$rf/tmp" "$rf/root" "$rf/etc" "$rf/usr/bin" "$rf/var/tmp"
chmod 1777 "$rf/tmp" "$rf/var/tmp"
chmod 0700 "$rf/root"
cp "$(command -v busybox)" "$rf/bin/busybox"
for applet in $("$rf/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$rf/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$rf/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rf/etc/group"
tar --numeric-owner --owner=0 --group=0 -C "$rf" -c . |
  docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' - "$tag" >/dev/null

mkdir -p "$work/ctx"
DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$tag" -f "$here/fixtures/layered.Dockerfile" -t "$ltag" "$work/ctx" >/dev/null

mkdir -p "$out.tmp"
docker save "$tag" -o "$out.tmp/busybox.tar"
docker save "$ltag" -o "$out.tmp/layered.tar"
# The daemon keeps nothing of the build: tests load the archives themselves, and an image built
# here would be the parent of the next one, which a test's removeImage could not remove.
docker rmi "$ltag" "$tag" >/dev/null
touch "$out.tmp/complete"
rm -rf "$out"
mv "$out.tmp" "$out"
log "fixtures built in $out"
printf '%s\n' "$out"
