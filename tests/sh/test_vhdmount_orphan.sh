#!/bin/bash
# A file unlinked (or renamed over) while open through the mount keeps
# working through its descriptor: it is read, overwritten and grown after
# the unlink. vhdmount is then killed (-9) while the descriptors are still
# open, after a commit (an fsync of another file) took the unlink; the
# kernel's writeback cache is off, so the writes reach the library first.
# vhdfsck -n must exit 0 (issue 15: the unlink freed the chain in the FAT
# at once, so no committed state holds clusters without an entry; before,
# this left the file's clusters lost, exit 4) and the remount shows
# neither name.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vhdmount_lib.sh"
fuse_need
need "$VHDFSCK" head base64
umask 022
image_new 64M
# Text without newlines, written and read through the descriptors with
# bash builtins.
text() { head -c "$1" /dev/urandom | base64 -w0; }
a=$(text 300000)
b=$(text 200000)
c=$(text 5000)
a2=$(text 420000) # overwrites a and grows it

mnt_start "$IMG" "$M" --key-file "$KEY" -o commit=1 -o nowriteback
printf '%s' "$a" >"$M/unlinked"
printf '%s' "$b" >"$M/replaced"
printf '%s' "$c" >"$M/newer"
exec 7<"$M/unlinked" 8<>"$M/unlinked" 9<"$M/replaced"
rm "$M/unlinked" || fail "unlink of an open file"
mv "$M/newer" "$M/replaced" || fail "rename over an open file"
[[ ! -e $M/unlinked ]] || fail "the unlinked name is still there"
[[ $(<"$M/replaced") == "$c" ]] || fail "replaced is not the renamed file"
IFS= read -r -N ${#b} got <&9 || true
[[ $got == "$b" ]] || fail "the replaced file no longer reads through its descriptor"
printf '%s' "$a2" >&8 || fail "writing through the descriptor"
IFS= read -r -N $((${#a2} + 1)) got <&7 || true
[[ $got == "$a2" ]] || fail "the unlinked file does not read back what was written (${#got} bytes)"
# A commit that takes the unlink while the descriptors are open: an fsync
# (of another file) commits the whole volume.
printf 'x' | dd of="$M/after" conv=fsync status=none || fail "fsync of another file"
kill -KILL "$MPID"
wait "$MPID" 2>/dev/null || true
MPID=
exec 7<&- 8>&- 9<&-
fusermount3 -u -z "$M" 2>/dev/null || true
poll 400 image_unlocked "$IMG" || fail "image still locked after the kill"
rc=0
"$VHDFSCK" -n --key-file "$KEY" "$IMG" >"$T/fsck.out" 2>&1 || rc=$?
[[ $rc == 0 ]] || { cat "$T/fsck.out" >&2; fail "vhdfsck -n exit $rc after kill -9 with open unlinked files"; }

mnt_start "$IMG" "$M" --key-file "$KEY"
[[ ! -e $M/unlinked && -f $M/after ]] || fail "the remount is not the committed state"
[[ $(<"$M/replaced") == "$c" ]] || fail "replaced changed"
mnt_stop "$M"
fsck_clean "$IMG" "$KEY"
note "open unlinked and replaced files left nothing to repair after kill -9"
