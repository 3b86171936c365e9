#!/bin/bash
# vhdmount's life outside the happy path: daemon mode and its lock, usage
# and key errors before anything is mounted, the anchor across the daemon's
# chdir and a rollback refused at open, SIGTERM as a clean unmount, SIGKILL
# in the middle of a write (fsync'd data survives), an integrity failure on
# read (EIO, one log line naming block and path, the mount stays up), and a
# read-only mount. Skips (77, with the reason) where FUSE cannot mount.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vhdmount_lib.sh"
fuse_need
need cmp od dd
umask 022

KEY=$T/key
M=$T/mnt
mkdir "$M"
cd "$T"

# ---- errors before anything is mounted ---------------------------------------
note "usage, bad options, wrong key, missing mountpoint"
expect_status 0 "$MKVHD" --size 64M --new-key-file "$KEY" --anchor anchor img.vhd
expect_status 2 "$VHDMOUNT"
expect_status 2 "$VHDMOUNT" img.vhd
expect_status 2 "$VHDMOUNT" --bogus img.vhd "$M"
expect_status 2 "$VHDMOUNT" --cache-mb 64M --key-file "$KEY" img.vhd "$M"
one_line_err
expect_err 'cache-mb'
# A bad -o is reported before any secret is read: the key file does not exist.
expect_status 2 "$VHDMOUNT" -o no_such_fuse_option --key-file "$T/none" img.vhd "$M"
expect_status 1 "$VHDMOUNT" --key-file "$KEY" img.vhd "$T/no-such-dir"
one_line_err
expect_err 'no-such-dir'
head -c 32 /dev/urandom >"$T/wrong"
expect_status 3 "$VHDMOUNT" --key-file "$T/wrong" --anchor anchor img.vhd "$M"
one_line_err
expect_err 'img.vhd: .*wrong key'
mountpoint -q "$M" && fail "mounted with a wrong key"

# ---- daemon mode, the lock, the anchor --------------------------------------
note "daemon mode: the lock is held after the parent exits"
cp img.vhd old.vhd                     # for the rollback below
# Relative image and anchor paths: the daemon runs in "/", the anchor is
# advanced by name, so vhdmount must have made it absolute.
expect_status 0 "$VHDMOUNT" --key-file "$KEY" --anchor anchor img.vhd mnt
mountpoint -q "$M" || fail "daemon mode: not mounted once vhdmount returned"
expect_status 1 "$VHDMOUNT" -f --key-file "$KEY" --anchor anchor img.vhd "$M"
one_line_err
expect_err 'img.vhd: .*busy'
if [[ -x "$VHDTOOL" ]]; then
    echo x >"$T/x"
    expect_status 1 "$VHDTOOL" put --key-file "$KEY" --anchor anchor img.vhd "$T/x" /x
    expect_err 'busy'
else
    note "vhdtool not built: skipping the vhdtool-write-while-mounted check"
fi
head -c 200000 /dev/urandom >"$T/d1"
cp "$T/d1" "$M/d1"
fusermount3 -u "$M" || fail "fusermount3 -u"
poll 400 image_unlocked img.vhd || fail "daemon did not release the image after unmount"
fsck_clean img.vhd "$KEY"
mnt_start img.vhd "$M" --key-file "$KEY" --anchor anchor
cmp "$T/d1" "$M/d1" || fail "file written in daemon mode"
mnt_stop "$M"

note "rollback: an older copy put back is refused (exit 4)"
cp old.vhd img.vhd
expect_status 4 "$VHDMOUNT" --key-file "$KEY" --anchor anchor img.vhd "$M"
one_line_err
expect_err 'img.vhd: .*(older|rollback)'
mountpoint -q "$M" && fail "mounted a rolled-back image"

note "a passphrase on standard input is read before the daemon detaches"
printf 'correct horse battery staple\n' >"$T/pw"
expect_status 0 "$MKVHD" -q --size 40M --passphrase-file "$T/pw" img5.vhd
"$VHDMOUNT" --passphrase-file - img5.vhd "$M" <"$T/pw" 2>"$T/err" || { cat "$T/err" >&2; fail "mount with a passphrase from stdin"; }
mountpoint -q "$M" || fail "not mounted with a passphrase from stdin"
fusermount3 -u "$M" || fail "fusermount3 -u"
poll 400 image_unlocked img5.vhd || fail "daemon did not release img5.vhd"
rc=0; printf 'wrong\n' | "$VHDMOUNT" --passphrase-file - img5.vhd "$M" 2>"$T/err" || rc=$?
[[ $rc == 3 ]] || fail "wrong passphrase: exit $rc, expected 3"
mountpoint -q "$M" && fail "mounted with a wrong passphrase"
[[ $(grep -vc 'freshness across' "$T/err") == 1 ]] && grep -q 'wrong key' "$T/err" || { cat "$T/err" >&2; fail "wrong passphrase message"; }

# ---- SIGTERM: a clean unmount ----------------------------------------------
note "SIGTERM unmounts cleanly"
expect_status 0 "$MKVHD" --size 64M --key-file "$KEY" img2.vhd
mnt_start img2.vhd "$M" --key-file "$KEY"
head -c 300000 /dev/urandom >"$T/d2"
cp "$T/d2" "$M/unsynced"               # never fsync'd: only the unmount saves it
# A file still open at SIGTERM: the kernel never releases it, vhdmount
# must close it itself or the volume could not be unmounted cleanly.
exec 9>"$M/held"
printf 'held open\n' >&9
kill -TERM "$MPID"
rc=0; wait "$MPID" || rc=$?; MPID=
exec 9>&-
[[ $rc == 0 ]] || { cat "$T/vhdmount.log" >&2; fail "vhdmount exited $rc on SIGTERM"; }
grep -q 'closed 1 file(s) still open' "$T/vhdmount.log" || fail "the open file was not closed at SIGTERM"
mountpoint -q "$M" && fail "still mounted after SIGTERM"
image_unlocked img2.vhd || fail "image locked after SIGTERM"
fsck_clean img2.vhd "$KEY"
mnt_start img2.vhd "$M" --key-file "$KEY"
cmp "$T/d2" "$M/unsynced" || fail "data written before SIGTERM"
[[ $(cat "$M/held") == 'held open' ]] || fail "the file open at SIGTERM lost its data"

# ---- SIGKILL in the middle of a write --------------------------------------
note "SIGKILL mid-write: fsync'd files survive"
head -c 2000000 /dev/urandom >"$T/s1"
cp "$T/s1" "$M/synced"
sync "$M/synced" || fail "fsync through the mount"
dd if=/dev/urandom of="$M/big" bs=65536 count=2000 status=none 2>/dev/null &
writer=$!
big_growing() { [[ $(stat -c %s "$M/big" 2>/dev/null || echo 0) -gt 1000000 ]]; }
poll 400 big_growing || fail "the writer never got going"
kill -KILL "$MPID"
wait "$MPID" 2>/dev/null || true; MPID=
wait $writer 2>/dev/null || true
fusermount3 -u -z "$M" || fail "lazy unmount of the dead mount"
poll 400 image_unlocked img2.vhd || fail "image still locked after SIGKILL"
if [[ -x "$VHDTOOL" ]]; then
    "$VHDTOOL" cat -q --key-file "$KEY" img2.vhd /synced >"$T/synced.out" ||
        fail "vhdtool cat of the fsync'd file after SIGKILL"
    cmp "$T/s1" "$T/synced.out" || fail "fsync'd file (read by vhdtool) not intact after SIGKILL"
fi
if [[ -x "$VHDFSCK" ]]; then
    # Killed mid-write: the image recovers its last commit, whose volume has
    # the dirty flag set. Every commit is a consistent volume, so the flag
    # alone is a note and -n exits 0 (vhdfsck(8)); -y clears it, still 0.
    rc=0; "$VHDFSCK" -n --key-file "$KEY" img2.vhd >"$T/fsck.out" 2>&1 || rc=$?
    [[ $rc == 0 ]] && grep -q 'note: not unmounted cleanly (dirty flag set)' "$T/fsck.out" ||
        { cat "$T/fsck.out" >&2; fail "vhdfsck -n after SIGKILL: exit $rc, or no dirty-flag note"; }
    rc=0; "$VHDFSCK" -y --key-file "$KEY" img2.vhd >"$T/fsck.out" 2>&1 || rc=$?
    [[ $rc == 0 ]] && grep -q 'dirty flag set); flag cleared' "$T/fsck.out" ||
        { cat "$T/fsck.out" >&2; fail "vhdfsck -y after SIGKILL: exit $rc, or the flag not cleared"; }
    fsck_clean img2.vhd "$KEY"
else
    note "vhdfsck not built: skipping the fsck checks after SIGKILL"
fi
mnt_start img2.vhd "$M" --key-file "$KEY"
cmp "$T/s1" "$M/synced" || fail "fsync'd file not intact after SIGKILL"
cmp "$T/d2" "$M/unsynced" || fail "file from before the clean SIGTERM unmount"
mnt_stop "$M"
fsck_clean img2.vhd "$KEY"

# ---- an integrity failure on read ------------------------------------------
note "tampered data block: EIO, one log line, the mount stays up"
mkdir src
head -c 41943040 /dev/zero | tr '\0' 'v' >src/bad.bin   # 40 MiB over logical blocks ~256..10500
printf 'fine\n' >src/good.txt
expect_status 0 "$MKVHD" --size 64M --key-file "$KEY" img3.vhd src
data_start=$(od -An -t u8 -j 104 -N 8 img3.vhd | tr -d ' ')
LBN=5120                                    # 20 MiB into the volume: inside bad.bin
flip_byte img3.vhd $(((data_start + LBN) * 4096 + 100)) 0xff
mnt_start img3.vhd "$M" --key-file "$KEY"
expect_status 1 cat "$M/bad.bin"
expect_err 'Input/output error'
# The request that met the bad block may log after another one, which found
# the handle already failed, answered EIO: wait for its line (20 s at most).
poll 400 grep -q "bad.bin: read: integrity failure in logical block $LBN" "$T/vhdmount.log" ||
    { cat "$T/vhdmount.log" >&2; fail "no log line naming block $LBN and the path"; }
n=$(grep -c 'integrity failure' "$T/vhdmount.log")
[[ $(cat "$M/good.txt") == fine ]] || fail "the mount did not stay up for other files"
head -c 1048576 "$M/bad.bin" | cmp - <(head -c 1048576 src/bad.bin) || fail "blocks before the bad one"
mnt_stop "$M"
[[ $n -ge 1 ]] || fail "integrity failure not logged"

note "tampered tree node: EIO, the range it covers logged, the handle refuses writes, exit 4"
expect_status 0 "$MKVHD" --force --size 64M --key-file "$KEY" img3.vhd src
node_start=$(od -An -t u8 -j 96 -N 8 img3.vhd | tr -d ' ')
height=$(od -An -t u4 -j 52 -N 4 img3.vhd | tr -d ' ')
[[ $height == 2 ]] || fail "expected a 2-level tree for 64 MiB (FORMAT.md), got $height"
# Root first, then level 1: the level-1 node over blocks 5120..5247 is number 40.
flip_byte img3.vhd $(((node_start + 1 + 40) * 4096 + 100)) 0xff
mnt_start img3.vhd "$M" --key-file "$KEY"
[[ $(cat "$M/good.txt") == fine ]] || fail "good file before the failure"
expect_status 1 cat "$M/bad.bin"
expect_err 'Input/output error'
poll 400 grep -q "bad.bin: read: integrity failure in a level-1 tree node covering logical blocks 5120-5247" \
    "$T/vhdmount.log" || { cat "$T/vhdmount.log" >&2; fail "no log line naming the node's range"; }
expect_status 1 touch "$M/new"            # sticky failed: nothing more is written
expect_err 'Input/output error'
fusermount3 -u "$M" || fail "fusermount3 -u"
rc=0; wait "$MPID" || rc=$?; MPID=
[[ $rc == 4 ]] || { cat "$T/vhdmount.log" >&2; fail "exit $rc after an integrity failure, expected 4"; }
grep -q 'not synced: an integrity failure' "$T/vhdmount.log" || fail "the unsynced unmount is not explained"
[[ $(grep -c 'image refuse\|closing the image' "$T/vhdmount.log") == 1 ]] || fail "the failed close is logged more than once"

# ---- a full volume ------------------------------------------------------------
note "ENOSPC: the write fails, the mount goes on"
expect_status 0 "$MKVHD" --size 40M --key-file "$KEY" img4.vhd
mnt_start img4.vhd "$M" --key-file "$KEY"
expect_status 1 dd if=/dev/zero of="$M/fill" bs=1M count=64
expect_err 'No space left'
# Writes are all or nothing (fs.h): less than one 1 MiB write is left.
df_free=$(($(stat -f -c '%a * %S' "$M")))
[[ $df_free -lt 1048576 ]] || fail "statfs shows $df_free bytes free on a full volume"
rm "$M/fill"
printf 'after\n' >"$M/after" || fail "write after ENOSPC and rm"
[[ $(cat "$M/after") == after ]] || fail "file written after ENOSPC"
mnt_stop "$M"
fsck_clean img4.vhd "$KEY"

# ---- other users ----------------------------------------------------------------
if command -v setpriv >/dev/null && [[ $(id -u) == 0 ]]; then
    note "allow_other: other users get the modes shown (0755 files), default_permissions"
    as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
    chmod 0755 "$T"                            # let nobody reach the mount point
    mnt_start img4.vhd "$M" -o allow_other --key-file "$KEY"
    [[ $(as_nobody cat "$M/after") == after ]] || fail "another user cannot read a 0755 file"
    expect_status 1 as_nobody touch "$M/by-nobody"
    expect_err 'Permission denied'
    expect_status 2 as_nobody sh -c "echo x >>'$M/after'"
    expect_err 'Permission denied'
    mnt_stop "$M"
    mnt_start img4.vhd "$M" --key-file "$KEY"
    expect_status 1 as_nobody cat "$M/after"   # without allow_other: FUSE refuses others
    expect_err 'Permission denied'
    mnt_stop "$M"
else
    note "not root or no setpriv: skipping the allow_other check"
fi

# ---- read-only ---------------------------------------------------------------
note "-o ro"
mnt_start img2.vhd "$M" -o ro --key-file "$KEY"
cmp "$T/s1" "$M/synced" || fail "read through a read-only mount"
expect_status 1 touch "$M/new"
expect_err 'Read-only'
expect_status 1 rm "$M/synced"
mnt_stop "$M"
echo "PASS"
