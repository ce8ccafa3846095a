# Shared by tools/services/*.sh (sourced, not run). Where state and caches live, logging, and
# process checks that only ever touch the process a script started itself.
#
#   HEPBUNDLE_SERVICES_DIR  run-time state: configs, logs, pid files, data (/tmp/hepbundle-services)
#   HEPBUNDLE_CI_CACHE      installs kept between runs, outside the clone (~/.cache/hepbundle-ci)

SERVICES_DIR=${HEPBUNDLE_SERVICES_DIR:-/tmp/hepbundle-services}
CI_CACHE=${HEPBUNDLE_CI_CACHE:-${HOME:-/root}/.cache/hepbundle-ci}
SERVICES_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { printf '[%s %s] %s\n' "$SERVICE" "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# the pid in $1 if /proc says that process's command line contains $2 (else fail)
pid_of() {
    local pidfile=$1 pattern=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern" || return 1
    echo "$pid"
}

# stop the process named by pid file $1 (only if its command line contains $2)
stop_pid() {
    local pid
    if pid=$(pid_of "$1" "$2"); then
        kill "$pid"
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        say "stopped pid $pid"
    else
        say "not running (nothing of ours to stop)"
    fi
    rm -f "$1"
}

# the local addresses listening on TCP port $1, space-separated
listeners() { ss -ltnH "sport = :$1" 2>/dev/null | awk '{print $4}' | sort -u | tr '\n' ' '; }

# fail unless every listener on port $1 is 127.0.0.1
loopback_only() {
    local got; got=$(listeners "$1")
    [[ $got == "127.0.0.1:$1 " ]] || { say "port $1 listens on '${got% }', not 127.0.0.1 only"; return 1; }
}
