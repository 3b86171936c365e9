#!/usr/bin/env bash
# Resource faults at the tool level (issue 9): the HOST's disk fills up
# while vhdtool writes into a sparse image. The write must fail with a
# clear one-line error and exit 1; the image must then reopen at its last
# committed state — everything synced before is intact, vhdfsck finds no
# integrity failure — and, once space is freed, accept writes again.
# Needs root to mount a small tmpfs (skipped with the reason otherwise).
source "$(dirname "$0")/lib.sh"
need "$MKVHD" "$VHDTOOL" "$VHDFSCK"
[[ $(id -u) == 0 ]] || skip "needs root to mount a size-limited tmpfs"
command -v mount >/dev/null || skip "mount not available"

FS=$T/small
mkdir -p "$FS"
mount -t tmpfs -o size=24m tmpfs "$FS" 2>/dev/null || skip "cannot mount tmpfs here"
at_exit "umount -l '$FS'"

K=(-q --key-file "$T/key")
note "a 64 MiB sparse image on a 24 MiB file system"
expect_status 0 "$MKVHD" -q --size 64M --new-key-file "$T/key" "$FS/img.vhd"
head -c 3000000 /dev/urandom >"$T/keep.bin"
expect_status 0 "$VHDTOOL" put "${K[@]}" "$FS/img.vhd" "$T/keep.bin" /keep.bin
used=$(du -k "$FS/img.vhd" | cut -f1)
note "image uses ${used} KiB of the host so far"

# Space to give back later: the failed put leaves the host full.
head -c $((6 << 20)) /dev/zero >"$FS/filler"
note "fill the host: a 40 MiB file cannot fit"
head -c $((40 << 20)) /dev/urandom >"$T/big.bin"
expect_status 1 "$VHDTOOL" put "${K[@]}" "$FS/img.vhd" "$T/big.bin" /big.bin
expect_err 'no space|No space'
one_line_err

note "the image reopens at its last commit, keep.bin intact"
expect_status 0 "$VHDTOOL" cat "${K[@]}" "$FS/img.vhd" /keep.bin
cmp -s "$T/out" "$T/keep.bin" || fail "keep.bin changed after the host filled up"
"$VHDFSCK" -n -q --key-file "$T/key" "$FS/img.vhd" >"$T/fsck.out" 2>&1 || rc=$?
rc=${rc:-0}
# 0 clean, or 4 with only structural leftovers of the failed put (lost
# clusters): never an integrity failure.
if grep -q 'authentication failed' "$T/fsck.out"; then
    cat "$T/fsck.out" >&2
    fail "vhdfsck reports an integrity failure after a host ENOSPC"
fi
[[ $rc == 0 || $rc == 4 ]] || { cat "$T/fsck.out" >&2; fail "vhdfsck exit $rc"; }
note "vhdfsck -n after ENOSPC: exit $rc, no integrity failure"

note "free space on the host: repair, then writes work again"
rm -f "$T/big.bin" "$FS/filler"
# 0 (nothing to fix) or 1 (fixed: a put cut short leaves lost clusters or
# a chain longer than its size; FS operations are not atomic across the
# image's implicit commits), never 4.
rc=0
"$VHDFSCK" -y -q --key-file "$T/key" "$FS/img.vhd" >"$T/fsck.out" 2>&1 || rc=$?
[[ $rc == 0 || $rc == 1 ]] || { cat "$T/fsck.out" >&2; fail "vhdfsck -y exit $rc"; }
grep -q 'authentication failed' "$T/fsck.out" && fail "integrity failure after ENOSPC"
head -c 1000000 /dev/urandom >"$T/small.bin"
expect_status 0 "$VHDTOOL" put "${K[@]}" "$FS/img.vhd" "$T/small.bin" /small.bin
expect_status 0 "$VHDTOOL" cat "${K[@]}" "$FS/img.vhd" /small.bin
cmp -s "$T/out" "$T/small.bin" || fail "small.bin differs"
expect_status 0 "$VHDFSCK" -n -q --key-file "$T/key" "$FS/img.vhd"
note "ok"
