# Helpers for tests/sh/test_nbd*.sh (sourced after lib.sh): nbdkit servers
# of our own on Unix sockets in $T (so parallel runs never meet), started
# with --exit-with-parent and stopped at exit even when a check failed.
# Readiness is polled (nbd_ready: the pid file appears once nbdkit
# accepts), never waited for with fixed sleeps.

declare -A _NBD_PID=()

_nbd_cleanup() {
    local n
    for n in "${!_NBD_PID[@]}"; do
        kill -KILL "${_NBD_PID[$n]}" 2>/dev/null
    done
    return 0
}
at_exit _nbd_cleanup

# Skips (exit 77, reason printed) where nbdkit is missing or the tools were
# built without NBD support.
nbd_need() {
    need "$MKVHD" "$VHDTOOL" "$VHDFSCK" nbdkit
    local err
    err=$("$VHDTOOL" info "nbd+unix:///?socket=$T/none.sock" 2>&1 || true)
    [[ "$err" != *"built without NBD support"* ]] || skip "the tools were built without NBD support (libnbd-dev missing at build time)"
}

# nbd_uri NAME: the URI of server NAME.
nbd_uri() { echo "nbd+unix:///?socket=$T/$1.sock"; }

# nbd_ready PIDFILE [PID [LOG]]: until nbdkit has written PIDFILE, which
# nbdkit(1) writes "after nbdkit becomes ready to accept connections"
# (after bind, listen and, without -f, the fork). The socket file is no
# such sign: bind() creates it before listen(), and a client connecting in
# between is refused (sh_nbdkit_plugin failed so once). With PID (nbdkit
# -f in the background, PIDFILE removed before it started): fails as soon
# as that process exits (printing LOG), and PIDFILE must name it.
nbd_ready() {
    local pidfile=$1 pid=${2:-} log=${3:-} i got
    for ((i = 0; i < 1200; i++)); do
        # read succeeds only on a whole line: nbdkit writes "PID\n" at once
        # into a file it created empty.
        if { read -r got <"$pidfile"; } 2>/dev/null && [[ $got =~ ^[0-9]+$ ]]; then
            [[ -z $pid || $got == "$pid" ]] || fail "$pidfile names $got, not nbdkit $pid"
            return 0
        fi
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            [[ -z $log ]] || cat "$log" >&2
            fail "nbdkit $pid exited before it was ready"
        fi
        sleep 0.05
    done
    fail "nbdkit wrote no $pidfile within 60 s (not ready)"
}

# nbd_start NAME NBDKIT-ARGS...: nbdkit -f -U $T/NAME.sock ... in the
# background; returns once it accepts connections.
nbd_start() {
    local name=$1
    shift
    rm -f "$T/$name.sock" "$T/$name.pid"
    nbdkit -f --exit-with-parent -U "$T/$name.sock" -P "$T/$name.pid" "$@" \
        2>>"$T/$name.log" &
    _NBD_PID[$name]=$!
    nbd_ready "$T/$name.pid" "${_NBD_PID[$name]}" "$T/$name.log"
}

# nbd_stop NAME [SIGNAL]: stop server NAME (TERM: clean; KILL: a crash of
# the server) and wait for it.
nbd_stop() {
    local name=$1 sig=${2:-TERM}
    kill -"$sig" "${_NBD_PID[$name]}" 2>/dev/null || true
    wait "${_NBD_PID[$name]}" 2>/dev/null || true
    unset "_NBD_PID[$name]"
}

# make_tree DIR: a small application tree (nested directories, long and
# mixed-case names, an empty file, files of odd sizes).
make_tree() {
    local d=$1
    mkdir -p "$d/bin" "$d/lib/python3/site" "$d/etc" "$d/empty dir"
    head -c 1500000 /dev/urandom >"$d/bin/app"
    head -c 70001 /dev/urandom >"$d/lib/libapp.so.1"
    head -c 4096 /dev/urandom >"$d/lib/python3/site/A Long Module Name.py"
    printf 'key=value\n' >"$d/etc/app.conf"
    : >"$d/etc/empty"
    local i
    for ((i = 0; i < 40; i++)); do head -c $((i * 997)) /dev/urandom >"$d/lib/f$i.dat"; done
}

# sums DIR: sha256 of every file, by relative path (the independent oracle
# for "the tree read back is identical").
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
