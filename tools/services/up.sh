#!/usr/bin/env bash
# Every data service the tests use, in one call: what `make unit` and the pytest fixture run.
#
#   up.sh start   install what is missing, start XRootD and Rucio on loopback, seed Rucio,
#                 print the export lines (eval "$(tools/services/up.sh start)")
#   up.sh env     the export lines of running servers
#   up.sh stop    stop both
set -euo pipefail
here=$(dirname "$0")
case ${1:-} in
    start)
        t=$SECONDS
        bash "$here/xrootd.sh" start >/dev/null
        bash "$here/rucio.sh" start >/dev/null
        eval "$(bash "$here/xrootd.sh" env)"
        XROOTD_URL=$XROOTD_URL XROOTD_EXPORT=$XROOTD_EXPORT bash "$here/rucio.sh" seed >&2
        printf '[services %s] XRootD and Rucio ready in %d s\n' "$(date -u +%H:%M:%S)" "$((SECONDS - t))" >&2
        bash "$here/xrootd.sh" env
        bash "$here/rucio.sh" env ;;
    env) bash "$here/xrootd.sh" env; bash "$here/rucio.sh" env ;;
    stop) bash "$here/rucio.sh" stop; bash "$here/xrootd.sh" stop ;;
    *) echo "usage: $0 {start|env|stop}" >&2; exit 2 ;;
esac
