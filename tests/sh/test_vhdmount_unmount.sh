#!/bin/bash
# vhdmount -u (an unmount that returns once the image is synced, closed
# and unlocked), offline tools waiting for an exiting vhdmount, -q, and
# periodic commits: -o commit=1 against commit=0 across kill -9. Nothing
# waits a fixed time for the code under test: commits are seen as the
# image file changing. Skips (77, with the reason) where FUSE cannot mount.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vhdmount_lib.sh"
fuse_need
need "$VHDFSCK" "$VHDTOOL" cmp stat sha256sum
umask 022

KEY=$T/key
M=$T/mnt
M2=$T/mnt2
mkdir "$M" "$M2"
cd "$T"
expect_status 0 "$MKVHD" -q --size 64M --new-key-file "$KEY" img.vhd

# ---- usage --------------------------------------------------------------------
note "vhdmount -u: usage and what is not a vhdmount mount"
expect_status 2 "$VHDMOUNT" -u
expect_status 2 "$VHDMOUNT" -u -f "$M"
expect_status 2 "$VHDMOUNT" -u "$M" "$M2"
expect_status 2 "$VHDMOUNT" -o commit=abc --key-file "$KEY" img.vhd "$M"
one_line_err
expect_err 'commit=abc'
expect_status 2 "$VHDMOUNT" -o commit=86401 --key-file "$KEY" img.vhd "$M"
expect_status 1 "$VHDMOUNT" -u "$M"
one_line_err
expect_err 'mnt: not mounted'
expect_status 1 "$VHDMOUNT" -u "$T/no-such-dir"
one_line_err
if mountpoint -q /proc; then
    expect_status 1 "$VHDMOUNT" -u /proc
    one_line_err
    expect_err 'not mounted by vhdmount'
    mountpoint -q /proc || fail "vhdmount -u unmounted /proc"
fi

# ---- -u in daemon mode, then at once the offline tools and a copy ---------------
note "vhdmount -u, then at once vhdfsck, vhdtool and cp of the image"
expect_status 0 "$VHDMOUNT" -q --key-file "$KEY" img.vhd "$M"
[[ ! -s $T/err ]] || { cat "$T/err" >&2; fail "-q mount printed something"; }
head -c 3000000 /dev/urandom >d1
cp d1 "$M/d1"               # never fsync'd: only the unmount commits it
mkdir "$M/dir"
echo small >"$M/dir/s"
expect_status 0 "$VHDMOUNT" -u "$M"
[[ ! -s $T/err ]] || { cat "$T/err" >&2; fail "vhdmount -u printed something"; }
image_unlocked img.vhd || fail "image still locked when vhdmount -u returned"
mountpoint -q "$M" && fail "still mounted after vhdmount -u"
expect_status 0 "$VHDFSCK" -n --key-file "$KEY" img.vhd
grep -q 'not unmounted cleanly' "$T/err" && fail "vhdfsck notes an unclean unmount after vhdmount -u"
expect_status 0 "$VHDTOOL" cat -q --key-file "$KEY" img.vhd /d1
cmp d1 "$T/out" || fail "d1 after vhdmount -u"
cp img.vhd copy.vhd
expect_status 0 "$VHDFSCK" -n --key-file "$KEY" copy.vhd
expect_out 'copy.vhd: clean'
expect_status 0 "$VHDTOOL" ls -q --key-file "$KEY" copy.vhd /dir
expect_out '^s$'
[[ -z $(ls -A "$XDG_RUNTIME_DIR/vhdmount") ]] || fail "state file left after vhdmount -u"

note "vhdmount -u of a foreground mount returns the daemon's status"
mnt_start img.vhd "$M" --key-file "$KEY"
echo more >"$M/more"
expect_status 0 "$VHDMOUNT" -u "$M"
rc=0; wait "$MPID" || rc=$?; MPID=
[[ $rc == 0 ]] || fail "the daemon exited $rc"
expect_status 0 "$VHDTOOL" cat -q --key-file "$KEY" img.vhd /more
expect_out '^more$'

# ---- fusermount3 -u, then a tool: it waits for the exiting daemon --------------
note "fusermount3 -u, then at once vhdfsck: it waits for the daemon's close"
# A big cache full of unsynced writes makes the daemon's close take a while.
mnt_start img.vhd "$M" --key-file "$KEY" -o commit=0 --cache-mb 512
head -c 40000000 /dev/urandom >"$M/big"
fusermount3 -u "$M" || fail "fusermount3 -u"
rc=0; "$VHDFSCK" -n --key-file "$KEY" img.vhd >"$T/fsck.out" 2>&1 || rc=$?
[[ $rc == 0 ]] || { cat "$T/fsck.out" >&2; fail "vhdfsck -n right after fusermount3 -u: exit $rc"; }
grep -q 'waiting for vhdmount' "$T/fsck.out" && note "(vhdfsck waited for the daemon)"
wait "$MPID" || fail "the daemon failed"; MPID=
# vhdmount -u after someone else's unmount: waits too, then the status.
mnt_start img.vhd "$M" --key-file "$KEY" -o commit=0 --cache-mb 512
head -c 40000000 /dev/urandom >"$M/big"
fusermount3 -u "$M" || fail "fusermount3 -u"
rc=0; "$VHDMOUNT" -u "$M" 2>"$T/err" || rc=$?
# The daemon may already be done (then nothing is mounted and no daemon
# runs: "not mounted"); if it was still closing, -u waited: status 0.
[[ $rc == 0 ]] || grep -q 'not mounted' "$T/err" || { cat "$T/err" >&2; fail "vhdmount -u after fusermount3 -u: exit $rc"; }
image_unlocked img.vhd || fail "image locked after vhdmount -u returned"
wait "$MPID" || fail "the daemon failed"; MPID=

note "a tool does not wait for a vhdmount that is still mounted"
mnt_start img.vhd "$M" --key-file "$KEY"
expect_status 8 "$VHDFSCK" -n --key-file "$KEY" img.vhd
grep -q 'waiting' "$T/err" && fail "vhdfsck waited for a live mount"
expect_status 1 "$VHDTOOL" ls --key-file "$KEY" img.vhd /
sum=$(sha256sum <img.vhd)
expect_status 1 "$MKVHD" -q --force --size 64M --key-file "$KEY" img.vhd
one_line_err
expect_err 'img.vhd: another program has it open.*not replaced'
[[ $(sha256sum <img.vhd) == "$sum" ]] || fail "mkvhd --force replaced a mounted image"
expect_status 0 "$VHDMOUNT" -u "$M"
wait "$MPID" || true; MPID=

note "vhdmount -u of a mount whose daemon was killed: status 1, the reason"
mnt_start img.vhd "$M" --key-file "$KEY"
kill -KILL "$MPID"; wait "$MPID" 2>/dev/null || true; MPID=
expect_status 1 "$VHDMOUNT" -u "$M"
one_line_err
expect_err 'ended without closing it'
mountpoint -q "$M" && fail "the dead mount is still there"

# ---- periodic commits: commit=1 against commit=0 --------------------------------
note "kill -9: a file is kept with -o commit=1 once a commit came, lost with commit=0"
expect_status 0 "$MKVHD" -q --size 64M --key-file "$KEY" a.vhd
expect_status 0 "$MKVHD" -q --size 64M --key-file "$KEY" b.vhd
"$VHDMOUNT" -f -q -o commit=0 --key-file "$KEY" a.vhd "$M" 2>"$T/a.log" &
PA=$!
"$VHDMOUNT" -f -q -o commit=1 --key-file "$KEY" b.vhd "$M2" 2>"$T/b.log" &
PB=$!
at_exit "kill -KILL $PA $PB 2>/dev/null"
poll 400 mountpoint -q "$M" && poll 400 mountpoint -q "$M2" || fail "a or b not mounted"
sum_a=$(sha256sum <a.vhd)
eb=$(state_epoch "$M2")
[[ -n $eb ]] || fail "no epoch in b's state file"
head -c 100000 /dev/urandom >p1
cp p1 "$M/p1"
cp p1 "$M2/p1"
# b's periodic commit, complete (its state file says so); a had as long.
poll 600 epoch_after "$M2" "$eb" || fail "commit=1: no commit within 30 s of a write"
kill -KILL "$PA" "$PB"
wait "$PA" 2>/dev/null || true
wait "$PB" 2>/dev/null || true
fusermount3 -u -z "$M"
fusermount3 -u -z "$M2"
poll 400 image_unlocked a.vhd && poll 400 image_unlocked b.vhd || fail "images still locked"
[[ $(sha256sum <a.vhd) == "$sum_a" ]] || fail "commit=0: the image changed without fsync or unmount"
expect_status 1 "$VHDTOOL" cat -q --key-file "$KEY" a.vhd /p1
expect_status 0 "$VHDTOOL" cat --key-file "$KEY" b.vhd /p1
cmp p1 "$T/out" || fail "commit=1: p1 not intact after kill -9"
expect_err 'b.vhd: not unmounted cleanly; last commit at epoch [0-9]+'
expect_status 0 "$VHDTOOL" cat -q --key-file "$KEY" b.vhd /p1
[[ ! -s $T/err ]] || fail "vhdtool -q printed the unclean note"
expect_status 0 "$VHDFSCK" -n --key-file "$KEY" b.vhd
expect_err 'note: not unmounted cleanly \(dirty flag set\)'

note "an idle mount commits nothing"
mnt_start b.vhd "$M2" --key-file "$KEY" -o commit=1
grep -q 'not unmounted cleanly; last commit at epoch' "$T/vhdmount.log" || fail "no unclean note at mount"
sum_b=$(sha256sum <b.vhd)
# Another mount's commits are the clock: after two of them, b had two
# intervals with nothing to commit.
expect_status 0 "$MKVHD" -q --size 64M --key-file "$KEY" c.vhd
"$VHDMOUNT" -f -q -o commit=1 --key-file "$KEY" c.vhd "$M" 2>"$T/c.log" &
PC=$!
at_exit "kill -KILL $PC 2>/dev/null"
poll 400 mountpoint -q "$M" || fail "c not mounted"
for i in 1 2; do
    ec=$(state_epoch "$M")
    echo "$i" >"$M/tick$i"
    poll 600 epoch_after "$M" "$ec" || fail "c: no commit"
done
[[ $(sha256sum <b.vhd) == "$sum_b" ]] || fail "an idle mount wrote to its image"
expect_status 0 "$VHDMOUNT" -u "$M"
wait "$PC" || fail "c's daemon failed"
mnt_stop "$M2"
fsck_clean b.vhd "$KEY"

# ---- the anchor in explicit-sync mode (issue 18: NV wear) ----------------------
note "periodic commits leave an --anchor-on-sync anchor alone; fsync and -u move it"
anchor_value() { od -An -t u8 -j 16 -N 8 "$1" | tr -d ' '; }
expect_status 0 "$MKVHD" -q --size 64M --key-file "$KEY" --anchor d.anchor --anchor-on-sync d.vhd
mnt_start d.vhd "$M" --key-file "$KEY" --anchor d.anchor --anchor-on-sync -o commit=1
a0=$(anchor_value d.anchor)
for i in 1 2 3; do
    ed=$(state_epoch "$M")
    echo "$i" >"$M/tick$i"
    poll 600 epoch_after "$M" "$ed" || fail "d: no periodic commit"
done
[[ $(anchor_value d.anchor) == "$a0" ]] ||
    fail "three periodic commits moved the anchor from $a0 to $(anchor_value d.anchor)"
dd if=/dev/urandom of="$M/synced" bs=4k count=4 conv=fsync status=none || fail "fsync"
a1=$(anchor_value d.anchor)
(( a1 > a0 )) || fail "an fsync did not move the anchor ($a0)"
(( a1 >= $(state_epoch "$M") )) || fail "anchor $a1 behind the fsync'd epoch $(state_epoch "$M")"
expect_status 0 "$VHDMOUNT" -u "$M"
wait "$MPID" || fail "d's daemon failed"
MPID=
expect_status 0 "$VHDTOOL" info --key-file "$KEY" --anchor d.anchor d.vhd
(( $(anchor_value d.anchor) == $(awk '/^epoch:/ {print $2}' "$T/out") )) ||
    fail "after -u: anchor $(anchor_value d.anchor) != epoch $(awk '/^epoch:/ {print $2}' "$T/out")"
expect_status 0 "$VHDFSCK" -n --key-file "$KEY" --anchor d.anchor d.vhd
