#!/usr/bin/env bash
# A real XRootD server (Debian xrootd-server 5.5) for hepbundle's tests: loopback only, one
# exported directory, server-side adler32. Idempotent; `start` reuses a running server.
#
#   xrootd.sh install   Debian packages (xrootd-server, xrootd-client) when a command is missing
#   xrootd.sh start     install, build the bind shim, start on 127.0.0.1, print the env lines
#   xrootd.sh env       print XROOTD_URL and XROOTD_EXPORT (export lines)
#   xrootd.sh status    exit 0 when our server answers
#   xrootd.sh stop      stop the server this script started
#
# Environment: HEPBUNDLE_XROOTD_PORT (11094), HEPBUNDLE_SERVICES_DIR (see common.sh).
# A file $XROOTD_EXPORT/a/f.root is read as $XROOTD_URL/$XROOTD_EXPORT/a/f.root (the URL path is
# the absolute local path, so it starts with two slashes after the port).
#
# xrootd cannot be told which address to listen on (it binds the wildcard address), so it runs
# with bind_loopback.so preloaded and in IPv4 mode; start refuses a server that listens anywhere
# but 127.0.0.1. It refuses to run as root, so it runs as the unprivileged `xrootd` user that the
# Debian package creates (or `nobody` elsewhere), which owns its run, log and export directories.
set -euo pipefail
SERVICE=xrootd
. "$(dirname "$0")/common.sh"

PORT=${HEPBUNDLE_XROOTD_PORT:-11094}
HOME_DIR=$SERVICES_DIR/xrootd
EXPORT=$HOME_DIR/data
RUN=$HOME_DIR/run
CFG=$HOME_DIR/xrootd.cfg
INSTANCE=hepbundle-tests
PIDFILE=$RUN/$INSTANCE/xrootd.pid
SHIM=$CI_CACHE/bind_loopback.so
URL=root://127.0.0.1:$PORT

do_install() {
    command -v xrootd >/dev/null && command -v xrdfs >/dev/null && command -v xrdcp >/dev/null && return
    [[ $(id -u) -eq 0 ]] || die "xrootd is not installed and installing it needs root (apt-get install xrootd-server xrootd-client)"
    say "installing xrootd-server xrootd-client (apt)"
    local t=$SECONDS
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q xrootd-server xrootd-client >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q xrootd-server xrootd-client >/dev/null
    fi
    say "installed in $((SECONDS - t)) s"
}

build_shim() {
    local src=$SERVICES_SRC/bind_loopback.c
    [[ -f $SHIM && $SHIM -nt $src ]] && return
    mkdir -p "$CI_CACHE"
    gcc -shared -fPIC -O2 -Wall -o "$SHIM.tmp" "$src" -ldl
    mv "$SHIM.tmp" "$SHIM"
}

run_user() { id xrootd >/dev/null 2>&1 && echo xrootd || echo nobody; }

# one try to connect, bounded: the client's defaults retry for minutes
answers() {
    XRD_CONNECTIONRETRY=1 XRD_CONNECTIONWINDOW=3 XRD_REQUESTTIMEOUT=5 \
        timeout 10 xrdfs "$URL" stat "$EXPORT" >/dev/null 2>&1
}

do_start() {
    if pid_of "$PIDFILE" "-c $CFG" >/dev/null && answers; then
        say "already running at $URL"
        return
    fi
    [[ -z $(listeners "$PORT") ]] || die "port $PORT is taken by another process; set HEPBUNDLE_XROOTD_PORT"
    local user; user=$(run_user)
    mkdir -p "$RUN" "$HOME_DIR/log" "$EXPORT"
    chmod 755 "$SERVICES_DIR" "$HOME_DIR"  # the server's user must reach its directories
    chown "$user" "$RUN" "$HOME_DIR/log" "$EXPORT" 2>/dev/null || chmod 1777 "$RUN" "$HOME_DIR/log" "$EXPORT"
    cat >"$CFG" <<CFG
# written by tools/services/xrootd.sh
all.export $EXPORT
all.adminpath $RUN
all.pidpath $RUN
# server-side checksums: xrdadler32, xrdfs query checksum, the Python bindings' query
xrootd.chksum adler32
# no reverse DNS lookups of clients
xrd.network nodnr
CFG
    say "starting on 127.0.0.1:$PORT as $user, exporting $EXPORT"
    local t=$SECONDS runas=()
    [[ $(id -u) -eq 0 ]] && runas=(-R "$user")
    # exec in a subshell with its own streams: the caller's stdout is not held open
    (cd "$RUN" && LD_PRELOAD=$SHIM exec xrootd "${runas[@]}" -I v4 -p "$PORT" -n "$INSTANCE" \
        -c "$CFG" -l "=$HOME_DIR/log/xrootd.log") </dev/null >"$HOME_DIR/log/stdout.log" 2>&1 &
    for _ in $(seq 1 100); do
        [[ -n $(listeners "$PORT") ]] && answers && break
        sleep 0.1
    done
    if ! answers; then
        tail -n 20 "$HOME_DIR/log/stdout.log" "$HOME_DIR/log/xrootd.log" >&2 2>/dev/null || true
        do_stop
        die "xrootd did not answer; logs in $HOME_DIR/log"
    fi
    loopback_only "$PORT" || { do_stop; die "refusing a server that is not on loopback only"; }
    say "up in $((SECONDS - t)) s (pid $(pid_of "$PIDFILE" "-c $CFG"))"
}

do_env() {
    printf 'export XROOTD_URL=%s\nexport XROOTD_EXPORT=%s\n' "$URL" "$EXPORT"
}

do_stop() { stop_pid "$PIDFILE" "-c $CFG"; }

case ${1:-} in
    install) do_install ;;
    start) do_install; build_shim; do_start; do_env ;;
    env) do_env ;;
    status) pid_of "$PIDFILE" "-c $CFG" >/dev/null && answers ;;
    stop) do_stop ;;
    *) echo "usage: $0 {install|start|env|status|stop}" >&2; exit 2 ;;
esac
