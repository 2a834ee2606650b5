#!/usr/bin/env bash
# A local image registry for the pull tests and the pull benchmark: Debian's `docker-registry`
# (the CNCF distribution registry 2.8), always on loopback. Idempotent.
#
#   setup-registry.sh                      installs docker-registry, htpasswd (apache2-utils) and
#                                          openssl when missing; prints the registry binary's path
#   setup-registry.sh serve --dir DIR --port N [options]
#                                          writes DIR/config.yml and runs the registry in the
#                                          foreground (exec: the caller's child is the registry)
#   setup-registry.sh start --dir DIR --port N [options]
#                                          the same in the background; waits until it answers,
#                                          records DIR/registry.pid, log in DIR/registry.log
#   setup-registry.sh stop --dir DIR       stops the registry that `start` recorded in DIR
#
# Options: --storage DIR (default DIR/storage), --tls-cert FILE --tls-key FILE (HTTPS),
# --htpasswd FILE (basic auth; bcrypt entries, `htpasswd -Bbn USER PASSWORD`), or token auth:
# --token-realm URL --token-service NAME --token-issuer NAME --token-rootcert FILE.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

mode="${1:-install}"
[ $# -gt 0 ] && shift

dir="" port="" storage="" tls_cert="" tls_key="" htpasswd="" realm="" service="" issuer="" rootcert=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2" ;;
    --port) port="$2" ;;
    --storage) storage="$2" ;;
    --tls-cert) tls_cert="$2" ;;
    --tls-key) tls_key="$2" ;;
    --htpasswd) htpasswd="$2" ;;
    --token-realm) realm="$2" ;;
    --token-service) service="$2" ;;
    --token-issuer) issuer="$2" ;;
    --token-rootcert) rootcert="$2" ;;
    *) die "unknown option $1 (see the comment at the top of $0)" ;;
  esac
  shift 2 || die "option $1 needs a value"
done

install_registry() {
  # The package's init script would start a registry on :5000; where policy-rc.d forbids starting
  # services (containers, CI images) it does not, and the tests never use that one.
  ensure_commands docker-registry:docker-registry htpasswd:apache2-utils openssl:openssl
}

# write_config: DIR/config.yml for the options given. Every value is quoted for YAML.
write_config() {
  [ -n "$dir" ] || die "--dir is required"
  case "$port" in '' | *[!0-9]*) die "--port must be a port number" ;; esac
  storage="${storage:-$dir/storage}"
  mkdir -p "$dir" "$storage"
  q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"; }
  {
    printf 'version: 0.1\n'
    printf 'log:\n  level: info\n  fields:\n    service: registry\n'
    printf 'storage:\n  filesystem:\n    rootdirectory: %s\n' "$(q "$storage")"
    printf '  delete:\n    enabled: true\n'
    printf '  maintenance:\n    uploadpurging:\n      enabled: false\n'
    printf 'http:\n  addr: %s\n' "$(q "127.0.0.1:$port")"
    # A fixed secret: a random one per start is only a warning, but this keeps the log quiet.
    printf '  secret: %s\n' "$(q "contexec-local-registry")"
    if [ -n "$tls_cert" ]; then
      printf '  tls:\n    certificate: %s\n    key: %s\n' "$(q "$tls_cert")" "$(q "$tls_key")"
    fi
    if [ -n "$htpasswd" ]; then
      printf 'auth:\n  htpasswd:\n    realm: %s\n    path: %s\n' "$(q "contexec")" "$(q "$htpasswd")"
    elif [ -n "$realm" ]; then
      printf 'auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n' \
        "$(q "$realm")" "$(q "$service")" "$(q "$issuer")" "$(q "$rootcert")"
    fi
  } >"$dir/config.yml"
}

answers() { tcp_answers 127.0.0.1 "$port"; }

case "$mode" in
  install)
    install_registry
    command -v docker-registry
    ;;
  serve)
    install_registry
    write_config
    exec docker-registry serve "$dir/config.yml"
    ;;
  start)
    install_registry
    write_config
    if [ -f "$dir/registry.pid" ] && kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null; then
      log "a registry already runs for $dir (pid $(cat "$dir/registry.pid"))"
      exit 0
    fi
    answers && die "port $port on 127.0.0.1 is taken; choose another --port"
    nohup setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    echo $! >"$dir/registry.pid"
    for _ in $(seq 1 100); do
      if answers; then
        log "registry on 127.0.0.1:$port (pid $(cat "$dir/registry.pid"), log $dir/registry.log)"
        exit 0
      fi
      kill -0 "$(cat "$dir/registry.pid")" 2>/dev/null || break
      sleep 0.1
    done
    tail -n 20 "$dir/registry.log" >&2 || true
    die "the registry did not start; see $dir/registry.log"
    ;;
  stop)
    [ -n "$dir" ] || die "--dir is required"
    if [ -f "$dir/registry.pid" ]; then
      pid=$(cat "$dir/registry.pid")
      # Only the registry this script started for DIR: its command line names DIR's config.
      if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/config.yml"; then
        kill "$pid" 2>/dev/null || true
      fi
      rm -f "$dir/registry.pid"
    fi
    ;;
  *) die "unknown mode $mode: use install, serve, start or stop" ;;
esac
