#!/bin/bash
# -o threads=N: at most N requests served at once (default 4). A value
# outside 1..16 is a usage error (exit 2) before any key is read. With
# threads=1, four writers that fsync every write and two readers, all at
# once, finish (nothing a request waits for needs a second thread), the
# data reads back and fsck is clean; the daemon then has fewer threads
# than after the same load with threads=4 (libfuse keeps the workers it
# started, so the count after the load is the most that ran).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vhdmount_lib.sh"
fuse_need
need dd cmp head
image_new 64M

for v in 0 17 abc ''; do
    expect_status 2 "$VHDMOUNT" -o "threads=$v" --key-file "$KEY" "$IMG" "$M"
    expect_err "threads=$v: not a number of threads in 1..16"
    one_line_err
done

for i in 1 2 3 4; do head -c $((32 * 16384)) /dev/urandom >"$T/w$i"; done
head -c $((1024 * 1024)) /dev/urandom >"$T/r"

# load N: the parallel load on a mount with -o threads=N; prints the
# daemon's thread count after it.
load() {
    mnt_start "$IMG" "$M" --key-file "$KEY" -o "threads=$1"
    cp "$T/r" "$M/r" || fail "cp to the mount (threads=$1)"
    local pids=() i p
    for i in 1 2 3 4; do
        dd if="$T/w$i" of="$M/w$i" bs=16384 oflag=dsync status=none &
        pids+=($!)
    done
    for i in 1 2; do
        # Past the kernel's page cache: read through the daemon.
        dd if="$M/r" of=/dev/null bs=4096 iflag=direct status=none &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || fail "a writer or reader failed (threads=$1)"; done
    for i in 1 2 3 4; do cmp -s "$T/w$i" "$M/w$i" || fail "w$i does not read back (threads=$1)"; done
    cmp -s "$T/r" "$M/r" || fail "r does not read back (threads=$1)"
    ls "/proc/$MPID/task" | wc -l >"$T/tasks"
    mnt_stop "$M"
    fsck_clean "$IMG" "$KEY"
}
load 1
one=$(cat "$T/tasks")
load 4
four=$(cat "$T/tasks")
[[ $one -lt $four ]] || fail "threads=1 left $one threads, threads=4 $four: the limit is not applied"
note "threads after the parallel load: $one with threads=1, $four with threads=4"
