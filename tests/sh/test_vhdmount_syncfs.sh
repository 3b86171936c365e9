#!/bin/bash
# syncfs(2) on the mount (`sync -f`) succeeds after files written through
# the kernel's writeback cache were removed or renamed over. The kernel
# writes a removed file's times back as it forgets the inode (a SETATTR
# for an inode with no name and no open handle); answering that with
# ENOENT made the kernel record a writeback error on the whole mount, and
# the next syncfs on any descriptor failed with ENOENT (found by vhdbench
# through `bench.sh --peers`: "I/O error from the host" after its first
# workload). The files that stay must read back unchanged.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vhdmount_lib.sh"
fuse_need
need sync head cmp
image_new 64M
head -c 1000000 /dev/urandom >"$T/data"

# Writeback cache on (the default), no periodic commit in between.
mnt_start "$IMG" "$M" --key-file "$KEY" -o commit=0
mkdir "$M/d"
sync -f "$M" || fail "syncfs on a fresh mount"

# Written, fsync'd, closed, then removed.
cp "$T/data" "$M/d/gone"
sync "$M/d/gone" || fail "fsync of d/gone"
rm "$M/d/gone"
sync -f "$M" || fail "syncfs after removing a file written through the writeback cache"

# Written and closed without fsync, then removed with its directory.
mkdir "$M/d2"
cp "$T/data" "$M/d2/gone"
rm -r "$M/d2"
sync -f "$M/d" || fail "syncfs after removing a directory with a freshly written file"

# A written file renamed over by another: the old inode loses its name.
cp "$T/data" "$M/d/old"
head -c 5000 "$T/data" >"$M/d/new"
mv "$M/d/new" "$M/d/old"
sync -f "$M" || fail "syncfs after renaming over a file written through the writeback cache"
cmp -s <(head -c 5000 "$T/data") "$M/d/old" || fail "d/old is not the renamed file"

# A file that stays is durable and whole across the remount.
cp "$T/data" "$M/d/kept"
sync -f "$M" || fail "syncfs with a file written and kept"
mnt_stop "$M"
mnt_start "$IMG" "$M" --key-file "$KEY"
cmp -s "$T/data" "$M/d/kept" || fail "d/kept changed across the remount"
[[ ! -e $M/d/gone && ! -e $M/d2 ]] || fail "a removed name came back"
mnt_stop "$M"
fsck_clean "$IMG" "$KEY"
note "syncfs stays clean after removing and replacing files written through the writeback cache"
