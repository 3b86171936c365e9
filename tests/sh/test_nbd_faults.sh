#!/usr/bin/env bash
# Faults from a real NBD server (issue 17): nbdkit's error filter (EIO on
# reads, writes or any request, at several rates), its delay filter, and a
# server killed in the middle of a sync. Under faults every tool either
# succeeds or fails with one clear line and status 1 (vhdfsck: 8) — never
# an integrity verdict (4), never a crash — and no wrong byte is ever
# returned: what a failed vhdtool cat printed is a prefix of the file, a
# failed get leaves only prefixes. Once the faults stop (nbdkit restarted
# on the same file without the filter) the image opens, vhdfsck -n finds
# it clean and every file synced before or during the faults (a put that
# returned 0) is intact. The error filter of nbdkit 1.32 has no seed and
# no flush errors: several rates and runs stand in for seeds, and a killed
# server covers a flush that never answers.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/nbd_lib.sh"
nbd_need

# Every commit moves the volume from one consistent state to the next
# (issue 15, C4), also when a fault cuts a sync or an operation short
# (tests/test_fs_faults.c): so vhdfsck -n must find the volume clean after
# every fault, with no repair, and the commands of a phase run back to
# back.

make_tree "$T/src"
sums "$T/src" >"$T/src.sums"
FILES=(bin/app lib/libapp.so.1 etc/app.conf lib/f39.dat)
K=$T/key
truncate -s 80M "$T/disk.img"
nbd_start base file "$T/disk.img"
expect_status 0 "$MKVHD" -q --new-key-file "$K" "$(nbd_uri base)" "$T/src"
nbd_stop base

# Files put successfully so far: path in the volume -> source file.
declare -A SYNCED=()

# prefix_of GOT SRC: GOT is a (possibly empty) prefix of SRC.
prefix_of() {
    local n
    n=$(stat -c %s "$1")
    (($(stat -c %s "$2") >= n)) || return 1
    cmp -s -n "$n" "$1" "$2"
}

# failed_cleanly STATUS...: the last command exited with one of STATUS and
# said why in one line naming the image.
failed_cleanly() {
    local got=$1
    shift
    local ok=0 s
    for s in "$@"; do [[ "$got" == "$s" ]] && ok=1; done
    ((ok)) || { cat "$T/err" >&2; fail "exit $got under faults (expected 0 or $*)"; }
    one_line_err
    grep -q 'nbd+unix://' "$T/err" || { cat "$T/err" >&2; fail "the error line does not name the image"; }
}

# run CMD...: status in RC, output in $T/out, $T/err (never fails itself).
run() { RC=0; "$@" >"$T/out" 2>"$T/err" </dev/null || RC=$?; }

# tree_has WHAT: $T/got holds the source tree and every synced put, each
# byte-identical (files of puts that failed may be there too).
tree_has() {
    local p line
    (cd "$T/got" && sums .) >"$T/got.sums"
    while IFS= read -r line; do
        grep -qxF -- "$line" "$T/got.sums" || fail "$1: file lost or changed: $line"
    done <"$T/src.sums"
    for p in "${!SYNCED[@]}"; do
        cmp -s "$T/got$p" "${SYNCED[$p]}" || fail "$1: $p, put with status 0, is lost or changed"
    done
}

# read_checks URI WHAT: every read tool under faults.
read_checks() {
    local u=$1 what=$2 f
    for f in "${FILES[@]}"; do
        run "$VHDTOOL" cat -q --key-file "$K" "$u" "/$f"
        if [[ $RC == 0 ]]; then
            cmp -s "$T/out" "$T/src/$f" || fail "$what: cat /$f returned wrong bytes"
        else
            failed_cleanly "$RC" 1
            prefix_of "$T/out" "$T/src/$f" || fail "$what: a failed cat /$f printed bytes that are not the file's"
        fi
    done
    rm -rf "$T/got"
    run "$VHDTOOL" get -q --key-file "$K" "$u" / "$T/got"
    if [[ $RC == 0 ]]; then
        tree_has "$what: get"
    else
        failed_cleanly "$RC" 1
        if [[ -d "$T/got" ]]; then
            while IFS= read -r -d '' f; do
                local want=$T/src/$f
                [[ -n "${SYNCED[/$f]:-}" ]] && want=${SYNCED[/$f]}
                [[ -f "$want" ]] || continue # a put that failed: nothing to compare
                prefix_of "$T/got/$f" "$want" || fail "$what: a failed get left /$f with wrong bytes"
            done < <(cd "$T/got" && find . -type f -printf '%P\0')
        fi
    fi
    run "$VHDTOOL" ls -R -q --key-file "$K" "$u" /
    [[ $RC == 0 ]] || failed_cleanly "$RC" 1
    run "$VHDFSCK" -n --key-file "$K" "$u"
    [[ $RC == 0 ]] || failed_cleanly "$RC" 8
}

# after_faults: a plain server on the same file; a writable open resolves
# any interrupted sync, then fsck is clean and everything synced is there.
after_faults() {
    local what=$1
    nbd_start clean file "$T/disk.img"
    local u
    u=$(nbd_uri clean)
    # fsck first (read-only: the volume as the faults left it), then a
    # writable open (mkdir), which resolves an interrupted sync, and fsck
    # again.
    run "$VHDFSCK" -n --key-file "$K" "$u"
    if [[ $RC != 0 ]]; then
        cat "$T/out" "$T/err" >&2
        fail "$what: vhdfsck -n is not clean once the faults stopped (exit $RC)"
    fi
    grep -q ' 0 bad blocks, 0 bad tree nodes' "$T/out" || { cat "$T/out"; fail "$what: bad blocks after the faults"; }
    expect_status 0 "$VHDTOOL" mkdir -q --key-file "$K" "$u" "/after-$2"
    expect_status 0 "$VHDFSCK" -n -q --key-file "$K" "$u"
    rm -rf "$T/got"
    expect_status 0 "$VHDTOOL" get -q --key-file "$K" "$u" / "$T/got"
    tree_has "$what"
    nbd_stop clean
}

# put_under_faults SRC DST: vhdtool put through server "faulty". Status
# 0: DST is synced from now on. A failure must be one clean line, and the
# next command meets the volume at its last commit.
put_under_faults() {
    local src=$1 dst=$2
    run "$VHDTOOL" put -q --key-file "$K" "$(nbd_uri faulty)" "$src" "$dst"
    if [[ $RC == 0 ]]; then
        SYNCED[$dst]=$src
        return
    fi
    failed_cleanly "$RC" 1
}

# ---- reads failing at several rates ------------------------------------------------
n=0
for spec in error-pread-rate=5% error-pread-rate=20% error-rate=10% error-rate=40%; do
    for run_no in 1 2; do
        n=$((n + 1))
        note "read faults: $spec (run $run_no)"
        nbd_start faulty --filter=error file "$T/disk.img" "$spec"
        read_checks "$(nbd_uri faulty)" "$spec"
        nbd_stop faulty
    done
done
after_faults "read faults" r

# ---- writes failing, and a slow server ----------------------------------------------
for spec in error-pwrite-rate=3% error-pwrite-rate=15% error-rate=5% error-rate=20%; do
    for run_no in 1 2 3; do
        n=$((n + 1))
        note "write faults: $spec (run $run_no)"
        nbd_start faulty --filter=error file "$T/disk.img" "$spec"
        src=$T/src/lib/f$((n % 40)).dat
        [[ -s "$src" ]] || src=$T/src/bin/app
        put_under_faults "$src" "/put$n"
        put_under_faults "$T/src/bin/app" "/big$n"
        read_checks "$(nbd_uri faulty)" "$spec"
        nbd_stop faulty
        after_faults "$spec" "w$n"
    done
done

note "delay filter (reads and writes 2 ms late) with 5% errors"
nbd_start faulty --filter=error --filter=delay file "$T/disk.img" rdelay=2ms wdelay=2ms error-rate=5%
put_under_faults "$T/src/lib/libapp.so.1" /slow
read_checks "$(nbd_uri faulty)" "delay"
nbd_stop faulty
after_faults "delay" d

# ---- the server killed in the middle of a sync ------------------------------------------
# The log filter says how many writes the server has taken; the delay
# filter and one server thread (the host keeps up to 64 writes in flight)
# keep the put from finishing before the kill lands.
for k in 1 4 12 30; do
    note "server killed after $k writes of a put"
    rm -f "$T/kill.log"
    nbd_start dying -t 1 --filter=log --filter=delay file "$T/disk.img" wdelay=20ms \
        logfile="$T/kill.log"
    u=$(nbd_uri dying)
    "$VHDTOOL" put -q --key-file "$K" "$u" "$T/src/bin/app" "/killed$k" >"$T/out" 2>"$T/err" </dev/null &
    ppid=$!
    for ((i = 0; i < 2000; i++)); do
        w=$(grep -c '\.\.\.Write id=' "$T/kill.log" 2>/dev/null || true)
        ((w >= k)) && break
        kill -0 "$ppid" 2>/dev/null || break
        sleep 0.01
    done
    nbd_stop dying KILL
    RC=0
    wait "$ppid" || RC=$?
    if [[ $RC == 0 ]]; then
        note "the put finished before the kill ($w writes seen)"
        SYNCED[/killed$k]=$T/src/bin/app
    else
        failed_cleanly "$RC" 1
    fi
    after_faults "kill after $k writes" "k$k"
done
note "ok"
