/**
 * Shell scripts for tests of the side channels, run with `sh -c SCRIPT NAME ARGS...` on the host
 * or inside any image with a POSIX sh and busybox-like tools (cat, od, base64, tr, sleep, grep).
 */

/**
 * A client of singreqrun's protocol that does what its Python client does: an id of 16 random
 * bytes in url-safe base64 with padding; `<id>.cmd` holding `#!/bin/bash\n` and the arguments
 * quoted as `shlex.quote` does (bare when only `[A-Za-z0-9_@%+=:,./-]`, `''` when empty, else
 * single-quoted with `'"'"'` for a quote) joined by spaces, no trailing newline, mode 0755;
 * `<id>\n` appended to `reqs` in one write; `.code` polled with growing sleeps; `.stdout` and
 * `.stderr` copied out whole; the code as its exit code. `$REQ_DIR` is the folder (default
 * `/var/run/req_run`); with `$REQ_CD` set the command line starts `cd $REQ_CD && `.
 * Prints the id on fd 3 when it is open, so a test can look at the files.
 */
export const PYTHON_LIKE_CLIENT_SH = `
dir=\${REQ_DIR:-/var/run/req_run}
pyquote() {
  case $1 in
    '') printf "''" ;;
    *[!A-Za-z0-9_@%+=:,./-]*)
      q= r=$1
      while :; do
        case $r in
          *\\'*) q=$q\${r%%\\'*}\\'\\"\\'\\"\\'; r=\${r#*\\'} ;;
          *) break ;;
        esac
      done
      printf "'%s'" "$q$r" ;;
    *) printf %s "$1" ;;
  esac
}
line= sep=
for a in "$@"; do
  line="$line$sep$(pyquote "$a")"
  sep=' '
done
[ -n "$REQ_CD" ] && line="cd $(pyquote "$REQ_CD") && $line"
id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_')
(umask 022; printf '#!/bin/bash\\n%s' "$line" >"$dir/$id.cmd") || exit 125
chmod 755 "$dir/$id.cmd"
{ printf '%s\\n' "$id" >&3; } 2>/dev/null
printf '%s\\n' "$id" >>"$dir/reqs"
i=0
while [ ! -e "$dir/$id.code" ]; do
  case $i in 0|1) sleep 0.01 ;; 2) sleep 0.03 ;; 3) sleep 0.05 ;; 4) sleep 0.1 ;; *) sleep 0.2 ;; esac
  i=$((i + 1))
done
code=
while [ -z "$code" ]; do read -r code <"$dir/$id.code"; done
cat "$dir/$id.stdout"
cat "$dir/$id.stderr" >&2
exit "$code"
`;

/**
 * A job in the supervisor-files convention: writes `result.txt` ("started") at once, then a
 * progress page to `status.html` every `$STEP_SECONDS` (default 1) for `$STEPS` steps (default
 * 5), each "step N of M", and `result.txt` "done: M steps" at the end (exit 0). It reads
 * `notifications.txt` before each step; on a line `ABORT` it writes "aborted at step N" to both
 * files and exits 3. `$SERVICE_DIR` is the folder (default `/service`).
 */
export const SUPERVISED_JOB_SH = `
dir=\${SERVICE_DIR:-/service}
steps=\${STEPS:-5}
echo started >"$dir/result.txt"
i=1
while [ "$i" -le "$steps" ]; do
  if grep -qx ABORT "$dir/notifications.txt" 2>/dev/null; then
    printf '<html><body><p>aborted at step %d</p></body></html>' "$i" >"$dir/status.html"
    echo "aborted at step $i" >"$dir/result.txt"
    exit 3
  fi
  printf '<html><body><h1>Progress</h1><p>step %d of %d</p></body></html>' "$i" "$steps" >"$dir/status.html"
  sleep "\${STEP_SECONDS:-1}"
  i=$((i + 1))
done
echo "done: $steps steps" >"$dir/result.txt"
`;
