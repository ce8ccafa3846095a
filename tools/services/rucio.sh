#!/usr/bin/env bash
# A real Rucio server (PyPI `rucio`, its Flask REST app under gunicorn) for hepbundle's tests:
# 127.0.0.1 only, SQLite, one worker with one thread (SQLite answers concurrent writers with
# "database is locked"; one at a time, requests queue instead). Idempotent.
#
#   rucio.sh install   the server venv, cached outside the clone, and a bootstrapped empty DB
#   rucio.sh start     install, fresh DB from the cached one, start gunicorn, print the env line
#   rucio.sh seed      scopes, RSEs POSIX_LOCAL (a directory) and XRD_LOCAL (the XRootD server
#                      of xrootd.sh, when it runs), unlimited quotas for root
#   rucio.sh env       print RUCIO_CONFIG (the client config: rucio-clients in the project venv)
#   rucio.sh status    exit 0 when our server answers /ping
#   rucio.sh stop      stop the server this script started
#
# Environment: HEPBUNDLE_RUCIO_PORT (18080), HEPBUNDLE_RUCIO_VERSION (41.5.1), PYTHON (python3),
# HEPBUNDLE_SERVICES_DIR / HEPBUNDLE_CI_CACHE (see common.sh).
#
# The server and rucio-clients both ship the `rucio` package, so the server has a venv of its own
# ($HEPBUNDLE_CI_CACHE/rucio-server-VERSION: ~150 s to create, then reused). The client config
# has no [database] section: with one, rucio-clients takes itself for a server and imports
# modules it does not ship.
set -euo pipefail
SERVICE=rucio
. "$(dirname "$0")/common.sh"

PORT=${HEPBUNDLE_RUCIO_PORT:-18080}
VERSION=${HEPBUNDLE_RUCIO_VERSION:-41.5.1}
PY=${PYTHON:-python3}
CACHE=$CI_CACHE/rucio-server-$VERSION
VENV=$CACHE/venv
EMPTY_DB=$CACHE/bootstrapped.db
HOME_DIR=$SERVICES_DIR/rucio
ETC=$HOME_DIR/etc
LOG=$HOME_DIR/log
DB=$HOME_DIR/rucio.db
PIDFILE=$HOME_DIR/gunicorn.pid
URL=http://127.0.0.1:$PORT
APP=rucio.web.rest.flaskapi.v1.main:application
# userpass identity of the bootstrapped root account of a loopback test server
USER_NAME=hepbundle
USER_PASS=loopback-test

ping_ok() {
    "$PY" -c 'import sys, urllib.request as u; sys.exit(u.urlopen(sys.argv[1], timeout=2).status != 200)' \
        "$URL/ping" 2>/dev/null
}

installed() {
    [[ -x $VENV/bin/gunicorn ]] &&
        "$VENV/bin/python" -c "import sys, rucio.version as v; sys.exit(v.version_string() != '$VERSION')" 2>/dev/null
}

# server config, alembic config and client config, all pointing at database $1
write_configs() {
    local db=$1 site
    site=$("$VENV/bin/python" -c "import os, rucio; print(os.path.dirname(rucio.__file__))")
    mkdir -p "$ETC" "$LOG" "$HOME_DIR/token"
    cat >"$ETC/rucio.cfg" <<CFG
# written by tools/services/rucio.sh (server side)
[common]
logdir = $LOG
loglevel = WARNING
[database]
default = sqlite:///$db
[bootstrap]
# create_root_account() salts and hashes this literal password
userpass_identity = $USER_NAME
userpass_pwd = $USER_PASS
userpass_email = root@localhost
[alembic]
cfg = $ETC/alembic.ini
[cache]
# nothing listens on port 1: Rucio runs without memcached
url = 127.0.0.1:1
[policy]
# Rucio's built-in generic policy (no experiment policy package); ATLAS-like hashed PFNs
permission = generic
schema = generic
lfn2pfn_algorithm_default = hash
[monitor]
enable_metrics = False
CFG
    cat >"$ETC/alembic.ini" <<CFG
[alembic]
script_location = $site/db/sqla/migrate_repo
sqlalchemy.url = sqlite:///$db
[loggers]
keys = root
[handlers]
keys = console
[formatters]
keys = plain
[logger_root]
level = WARN
handlers = console
[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = plain
[formatter_plain]
format = %(levelname)s %(message)s
CFG
    cat >"$ETC/rucio-client.cfg" <<CFG
# written by tools/services/rucio.sh: the client side, for rucio-clients $VERSION
[client]
rucio_host = $URL
auth_host = $URL
auth_type = userpass
username = $USER_NAME
password = $USER_PASS
account = root
request_retries = 1
auth_token_file_path = $HOME_DIR/token/token
CFG
}

do_install() {
    if ! installed; then
        say "creating the server venv $VENV (rucio==$VERSION, gunicorn)"
        local t=$SECONDS
        rm -rf "$VENV"
        mkdir -p "$CACHE"
        "$PY" -m venv "$VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check "rucio==$VERSION" gunicorn
        rm -f "$EMPTY_DB"
        say "venv ready in $((SECONDS - t)) s"
    fi
    if [[ ! -s $EMPTY_DB ]]; then
        # build_database, create_base_vo, create_root_account: what Rucio's tools/bootstrap.py does
        say "bootstrapping an empty database (schema, alembic stamp, base VO, root account)"
        local t=$SECONDS
        write_configs "$EMPTY_DB.tmp"
        rm -f "$EMPTY_DB.tmp"
        RUCIO_CONFIG=$ETC/rucio.cfg "$VENV/bin/python" -c "
from rucio.db.sqla.util import build_database, create_base_vo, create_root_account
build_database(); create_base_vo(); create_root_account()"
        mv "$EMPTY_DB.tmp" "$EMPTY_DB"
        say "bootstrapped in $((SECONDS - t)) s"
    fi
}

do_start() {
    if pid_of "$PIDFILE" "127.0.0.1:$PORT" >/dev/null && ping_ok; then
        say "already running at $URL"
        return
    fi
    [[ -z $(listeners "$PORT") ]] || die "port $PORT is taken by another process; set HEPBUNDLE_RUCIO_PORT"
    write_configs "$DB"
    cp "$EMPTY_DB" "$DB"   # every start begins from an empty catalogue
    rm -f "$HOME_DIR/token/token"
    say "starting gunicorn on 127.0.0.1:$PORT"
    local t=$SECONDS
    (cd "$HOME_DIR" && RUCIO_CONFIG=$ETC/rucio.cfg exec "$VENV/bin/gunicorn" --bind "127.0.0.1:$PORT" \
        --workers 1 --threads 1 --timeout 120 --no-control-socket --pid "$PIDFILE" \
        --error-logfile "$LOG/gunicorn.log" "$APP") </dev/null >"$LOG/stdout.log" 2>&1 &
    for _ in $(seq 1 240); do
        ping_ok && break
        sleep 0.25
    done
    if ! ping_ok; then
        tail -n 20 "$LOG/gunicorn.log" >&2 2>/dev/null || true
        do_stop
        die "the server did not answer within 60 s; logs in $LOG"
    fi
    loopback_only "$PORT" || { do_stop; die "refusing a server that is not on loopback only"; }
    say "up in $((SECONDS - t)) s"
}

do_seed() {
    ping_ok || die "the server is not running: $0 start"
    local xrd_url=${XROOTD_URL:-} xrd_export=${XROOTD_EXPORT:-}
    if [[ -z $xrd_url ]] && bash "$SERVICES_SRC/xrootd.sh" status 2>/dev/null; then
        eval "$(bash "$SERVICES_SRC/xrootd.sh" env)"
        xrd_url=$XROOTD_URL xrd_export=$XROOTD_EXPORT
    fi
    # the server venv has the client too; with the client config it runs as a client
    RUCIO_CONFIG=$ETC/rucio-client.cfg "$VENV/bin/python" "$SERVICES_SRC/rucio_seed.py" \
        --posix-dir "$HOME_DIR/rse-posix" --xrootd-url "$xrd_url" --xrootd-export "$xrd_export"
}

do_env() { printf 'export RUCIO_CONFIG=%s\n' "$ETC/rucio-client.cfg"; }

do_stop() { stop_pid "$PIDFILE" "127.0.0.1:$PORT"; }

case ${1:-} in
    install) do_install ;;
    start) do_install; do_start; do_env ;;
    seed) do_seed ;;
    env) do_env ;;
    status) pid_of "$PIDFILE" "127.0.0.1:$PORT" >/dev/null && ping_ok ;;
    stop) do_stop ;;
    *) echo "usage: $0 {install|start|seed|env|status|stop}" >&2; exit 2 ;;
esac
