import { chmod, mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** The client script's name in the bin folder; every allowed command is a link to it. */
export const CLIENT_SCRIPT_NAME = "contexec-host-command";

/**
 * A POSIX `sh` client of singreqrun's protocol, for images without Python: called through a link
 * named after a host command (`squeue --me`), or as `contexec-host-command squeue --me`, it
 * writes `<id>.cmd` (`#!/bin/bash`, then the words single-quoted as the C client does), sends
 * the id, waits for `<id>.code`, copies `<id>.stdout` and `<id>.stderr` out and exits with the
 * code. Needs `sh` and `cat`; uses `od` for random ids, `sleep` with fractions, `chmod` when present.
 *
 * @param requestDir the request folder in the container (a plain absolute path: validated so).
 */
export function renderClientScript(requestDir: string): string {
  if (!/^(\/[A-Za-z0-9_.+-]+)+$/.test(requestDir))
    throw new Error(`not a plain container path: ${requestDir}`);
  return `#!/bin/sh
# contexec host-command client: runs a host command through the host-command bridge
# (singreqrun's file protocol). Exit codes 124-127 of the bridge: timed out, bridge failure,
# refused, not found on the host; others are the command's own.
dir='${requestDir}'
name=\${0##*/}
if [ "$name" = ${CLIENT_SCRIPT_NAME} ]; then
  [ $# -gt 0 ] || { echo "usage: ${CLIENT_SCRIPT_NAME} COMMAND [ARG...]" >&2; exit 2; }
  name=$1
  shift
fi
# One word for the command line: single-quoted, each ' written '"'"'.
quote() {
  q= r=$1
  while :; do
    case $r in
      *\\'*) q=$q\${r%%\\'*}\\'\\"\\'\\"\\'; r=\${r#*\\'} ;;
      *) break ;;
    esac
  done
  printf "'%s'" "$q$r"
}
line=$(quote "$name")
for a in "$@"; do line="$line $(quote "$a")"; done
id=$(od -An -N16 -tx1 /dev/urandom 2>/dev/null)
id=$(printf %s $id)
[ -n "$id" ] || id=p$$t$(date +%s 2>/dev/null)
n=0
# Made exclusively (noclobber): an id already used is never reused.
until (set -C; printf '#!/bin/bash\\n%s' "$line" >"$dir/$id.cmd") 2>/dev/null; do
  n=$((n + 1))
  if [ $n -ge 20 ] || [ ! -w "$dir" ]; then
    echo "${CLIENT_SCRIPT_NAME}: cannot write a request in $dir" >&2
    exit 125
  fi
  id=\${id}n$n
done
chmod 755 "$dir/$id.cmd" 2>/dev/null
printf '%s\\n' "$id" >>"$dir/reqs" || exit 125
t=0.01
while [ ! -e "$dir/$id.code" ]; do
  sleep $t 2>/dev/null || sleep 1
  case $t in 0.01) t=0.03 ;; 0.03) t=0.1 ;; 0.1) t=0.2 ;; esac
done
cat "$dir/$id.stdout"
cat "$dir/$id.stderr" >&2
read -r code <"$dir/$id.code"
exit "$code"
`;
}

/** Writes the client script and one link per command name into `binDir` (made if missing). */
export async function writeClientBin(
  binDir: string,
  requestDir: string,
  names: Iterable<string>,
): Promise<void> {
  await mkdir(binDir, { recursive: true });
  await chmod(binDir, 0o755);
  const script = join(binDir, CLIENT_SCRIPT_NAME);
  await writeFile(script, renderClientScript(requestDir));
  await chmod(script, 0o755);
  for (const name of names) {
    if (name !== CLIENT_SCRIPT_NAME) await symlink(CLIENT_SCRIPT_NAME, join(binDir, name));
  }
}
