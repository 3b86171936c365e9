#!/bin/bash
# bench-mount.sh — what vhdmount costs, measured beside a plain directory
# on the same disk in one run: sequential write (dd conv=fdatasync) and
# read (caches dropped) of a 512 MiB file, and creating / reading 2000
# files of 4 KiB. Prints a table; asserts nothing (numbers depend on the
# machine and on its load).
#
#   scripts/bench-mount.sh [BUILD_DIR] [WORK_DIR]
#
# BUILD_DIR holds mkvhd/mkvhd and fusemount/vhdmount (default: build);
# WORK_DIR is where the image and the plain directory go (default: a new
# directory under /var/tmp, removed at the end). Needs root for
# /proc/sys/vm/drop_caches (without it the reads may come from the page
# cache, and the table says so).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$SRC/build}
MKVHD=$B/mkvhd/mkvhd
VHDMOUNT=$B/fusemount/vhdmount
for t in "$MKVHD" "$VHDMOUNT"; do
    [[ -x $t ]] || { echo "bench-mount: $t not built" >&2; exit 2; }
done
SEQ_MB=${SEQ_MB:-512}
NFILES=${NFILES:-2000}

W=${2:-$(mktemp -d /var/tmp/vdisk-bench-mount.XXXXXX)}
OWN_W=$([[ -z ${2:-} ]] && echo 1 || echo 0)
M=$W/mnt
PLAIN=$W/plain
MPID=
cleanup() {
    mountpoint -q "$M" 2>/dev/null && fusermount3 -u "$M" 2>/dev/null
    [[ -n $MPID ]] && wait "$MPID" 2>/dev/null
    [[ $OWN_W == 1 ]] && rm -rf -- "$W"
    return 0
}
trap cleanup EXIT
mkdir -p "$M" "$PLAIN"

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.1f", n / (b - a) }'; }
dropped=no
drop_caches() {
    sync
    if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then dropped=yes; fi
}

mount_img() {
    "$VHDMOUNT" -f --key-file "$W/key" "$W/img.vhd" "$M" 2>>"$W/vhdmount.log" &
    MPID=$!
    local i
    for ((i = 0; i < 400; i++)); do
        mountpoint -q "$M" && return 0
        kill -0 "$MPID" 2>/dev/null || { cat "$W/vhdmount.log" >&2; exit 1; }
        sleep 0.05
    done
    echo "bench-mount: mount did not come up" >&2
    exit 1
}
umount_img() {
    fusermount3 -u "$M"
    wait "$MPID"
    MPID=
}

# The small files' source: in the page cache, so only the target is timed.
mkdir -p "$W/small-src"
for ((i = 0; i < NFILES; i++)); do head -c 4096 /dev/urandom >"$W/small-src/f$i"; done

"$MKVHD" -q --size $((SEQ_MB + 256))M --new-key-file "$W/key" "$W/img.vhd" 2>/dev/null

# One measurement pass over a directory; remount is what happens between
# writing and reading ("" for the plain directory).
declare -A R
measure() {
    local name=$1 dir=$2 remount=$3 t0 t1
    t0=$(now)
    dd if=/dev/zero of="$dir/seq" bs=1M count="$SEQ_MB" conv=fdatasync status=none
    t1=$(now)
    R[$name.seqw]=$(rate "$SEQ_MB" "$t0" "$t1")
    [[ -n $remount ]] && { umount_img; mount_img; }
    drop_caches
    t0=$(now)
    dd if="$dir/seq" of=/dev/null bs=1M status=none
    t1=$(now)
    R[$name.seqr]=$(rate "$SEQ_MB" "$t0" "$t1")
    rm -f "$dir/seq"

    t0=$(now)
    cp -r "$W/small-src" "$dir/small"
    # Everything durable: an fsync commits the whole image on the mount
    # (FUSE passes no syncfs to it); syncfs does it for the plain directory.
    sync "$dir/small/f0"
    sync -f "$dir/small/f0"
    t1=$(now)
    R[$name.smallw]=$(rate "$NFILES" "$t0" "$t1")
    [[ -n $remount ]] && { umount_img; mount_img; }
    drop_caches
    t0=$(now)
    find "$dir/small" -type f -exec cat {} + >/dev/null
    t1=$(now)
    R[$name.smallr]=$(rate "$NFILES" "$t0" "$t1")
}

mount_img
measure vhd "$M" remount
umount_img
measure plain "$PLAIN" ""

printf '%-34s %12s %12s\n' "" "vhdmount" "plain dir"
printf '%-34s %12s %12s\n' "sequential write ${SEQ_MB} MiB (MB/s)" "${R[vhd.seqw]}" "${R[plain.seqw]}"
printf '%-34s %12s %12s\n' "sequential read ${SEQ_MB} MiB (MB/s)" "${R[vhd.seqr]}" "${R[plain.seqr]}"
printf '%-34s %12s %12s\n' "create ${NFILES} x 4 KiB (files/s)" "${R[vhd.smallw]}" "${R[plain.smallw]}"
printf '%-34s %12s %12s\n' "read ${NFILES} x 4 KiB (files/s)" "${R[vhd.smallr]}" "${R[plain.smallr]}"
echo "(MB = MiB here; caches dropped before reads: $dropped; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
