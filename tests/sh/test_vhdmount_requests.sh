#!/bin/bash
# Requests the kernel need not send to vhdmount. With the writeback cache
# every write(2) asks whether the file carries security.capability (to
# clear it); vhdmount answers extended-attribute calls so that the kernel
# stops asking after the first (ENOSYS, which callers see as ENOTSUP,
# test_vhdmount.sh): 40 writes of a file and 40 of another must not cost
# 80 GETXATTR round trips (they did before: one per write). Likewise
# FLUSH, which vhdmount has nothing to do for: at most one for the eight
# close(2) calls below (one per close before). Counted in the -d request
# log; the data must read back whole.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vhdmount_lib.sh"
fuse_need
need dd cmp head grep
image_new 64M
head -c $((40 * 4096)) /dev/urandom >"$T/data"

mnt_start "$IMG" "$M" --key-file "$KEY" -d
for f in a b; do
    # 40 write(2) calls of 4 KiB each.
    dd if="$T/data" of="$M/$f" bs=4096 count=40 status=none || fail "dd to $f"
done
# Two reads, and two more after the pages are dropped (fadvise through
# dd), so that the data is read through the daemon as well.
cmp -s "$T/data" "$M/a" && cmp -s "$T/data" "$M/b" || fail "the files do not read back"
for f in a b; do
    dd if="$M/$f" iflag=nocache count=0 status=none || fail "dropping the pages of $f"
done
cmp -s "$T/data" "$M/a" && cmp -s "$T/data" "$M/b" || fail "the files do not read back from the image"
mnt_stop "$M"
n=$(grep -c 'opcode: GETXATTR' "$T/vhdmount.log" || true)
fl=$(grep -c 'opcode: FLUSH' "$T/vhdmount.log" || true)
w=$(grep -c 'opcode: WRITE' "$T/vhdmount.log" || true)
[[ $w -ge 1 ]] || fail "no WRITE request in the -d log: the count below would prove nothing"
[[ $n -le 1 ]] || fail "$n GETXATTR requests for 80 write(2) calls (the kernel should ask once)"
[[ $fl -le 1 ]] || fail "$fl FLUSH requests for eight close(2) calls (the kernel should send one)"
fsck_clean "$IMG" "$KEY"
note "$n GETXATTR, $fl FLUSH and $w WRITE request(s) for 80 write(2) and 8 close(2) calls"
