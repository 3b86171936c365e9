#!/bin/bash
# kill -9 of vhdmount at random (seeded) moments of a mixed workload, many
# times over one image (issue 15, DESIGN C4/C5). After each kill:
#   - vhdfsck -n exits 0 (every commit is a consistent volume; the dirty
#     flag is only a note);
#   - the remount prints "not unmounted cleanly; last commit at epoch N";
#   - every file fsync'd (and not touched since) is byte-exact;
#   - every file written, closed and not touched since more than commit + 2
#     seconds before the kill (by the times this script recorded) is there
#     and byte-exact: periodic commits (-o commit=1) bound the loss.
# The kill moment is random; nothing waits a fixed time for the code under
# test: each round waits for its first commit by watching the image change.
# VD_CRASH_ROUNDS (default 20) and VD_SEED (default fixed) choose the runs.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vhdmount_lib.sh"
fuse_need
need "$VHDFSCK" cmp stat
umask 022

ROUNDS=${VD_CRASH_ROUNDS:-20}
SEED=${VD_SEED:-1515}
COMMIT=1
RANDOM=$SEED
note "seed $SEED, $ROUNDS rounds, -o commit=$COMMIT"

image_new 128M
K=$T/keep # what each file in the volume should hold
mkdir "$K"

# The manifest: files written, closed and not touched since. wtime[name] is
# the time the write (and its fsync, for synced[name]=1) returned.
declare -A wtime=() synced=()
nfiles=0

now() { echo "$EPOCHREALTIME"; }

# forget NAME: about to be touched; no promise until it is written again.
forget() { unset "wtime[$1]" "synced[$1]"; }

# PICKED: a name in the manifest, at random (in this shell: RANDOM must
# advance here, not in a subshell); 1 when there is none.
pick() {
    local names=("${!wtime[@]}")
    ((${#names[@]})) || return 1
    PICKED=${names[RANDOM % ${#names[@]}]}
}

alive() { [[ ! -f $T/killt ]]; }

# op: one random operation; returns 1 once the mount is gone (the kill).
op() {
    local r=$((RANDOM % 100)) name src new dir
    if ((r < 55 || ${#wtime[@]} < 3)); then
        # create: a new file, a quarter of them fsync'd
        nfiles=$((nfiles + 1))
        dir=.
        ((RANDOM % 3 == 0)) && dir=d$((RANDOM % 4))
        mkdir -p "$M/$dir" 2>>"$T/op.err" || return 1
        name=$dir/f$nfiles
        head -c $((RANDOM % 40000)) /dev/urandom >"$K/tmp"
        if ((RANDOM % 4 == 0)); then
            dd if="$K/tmp" of="$M/$name" bs=64k conv=fsync status=none 2>>"$T/op.err" || return 1
            synced[$name]=1
        else
            cp "$K/tmp" "$M/$name" 2>>"$T/op.err" || return 1
        fi
        mkdir -p "$K/$dir"
        mv "$K/tmp" "$K/$name"
        wtime[$name]=$(now)
    elif ((r < 70)); then
        # append
        pick || return 0
        name=$PICKED
        forget "$name"
        head -c $((RANDOM % 20000 + 1)) /dev/urandom >"$K/tmp"
        { cat "$K/tmp" >>"$M/$name"; } 2>>"$T/op.err" || return 1
        cat "$K/tmp" >>"$K/$name"
        wtime[$name]=$(now)
    elif ((r < 80)); then
        # rename, sometimes over another file of the manifest
        pick || return 0
        name=$PICKED
        pick
        new=$PICKED
        [[ $new == "$name" ]] && new=${name}r
        forget "$name"
        forget "$new"
        mv -f "$M/$name" "$M/$new" 2>>"$T/op.err" || return 1
        mv -f "$K/$name" "$K/$new"
        wtime[$new]=$(now)
    elif ((r < 90)); then
        # unlink
        pick || return 0
        name=$PICKED
        forget "$name"
        rm -f "$M/$name" 2>>"$T/op.err" || return 1
        rm -f "$K/$name"
    else
        # mkdir / rmdir of an empty directory
        dir=e$((RANDOM % 5))
        if [[ -d $M/$dir ]]; then rmdir "$M/$dir" 2>>"$T/op.err" || return 1
        else mkdir "$M/$dir" 2>>"$T/op.err" || return 1; fi
    fi
    return 0
}

# check_after_kill KILL_TIME: the promises above, through a fresh mount.
check_promises() {
    local kt=$1 name n=0 old=0
    for name in "${!wtime[@]}"; do
        if [[ ${synced[$name]:-0} == 1 ]] ||
            awk -v d="${wtime[$name]}" -v k="$kt" -v c="$COMMIT" 'BEGIN{exit !(d < k - c - 2)}'; then
            [[ -f $M/$name ]] ||
                fail "round $round: $name (${synced[$name]:+fsynced, }written at ${wtime[$name]}, killed at $kt) lost"
            cmp "$K/$name" "$M/$name" ||
                fail "round $round: $name (${synced[$name]:+fsynced, }written at ${wtime[$name]}, killed at $kt) changed"
            n=$((n + 1))
            [[ ${synced[$name]:-0} == 1 ]] || old=$((old + 1))
        else
            # Too young to be promised: it may or may not have survived.
            forget "$name"
        fi
    done
    checked=$((checked + n))
    checked_old=$((checked_old + old))
}

checked=0
checked_old=0
for ((round = 1; round <= ROUNDS; round++)); do
    mnt_start "$IMG" "$M" --key-file "$KEY" -o commit=$COMMIT
    if ((round > 1)); then
        grep -Eq 'not unmounted cleanly; last commit at epoch [0-9]+' "$T/vhdmount.log" ||
            { cat "$T/vhdmount.log" >&2; fail "round $round: no unclean note at the remount"; }
        check_promises "$kt"
    fi
    # The round's first commit, complete (the state file's epoch): from
    # then on the volume on disk carries this session's dirty flag.
    e0=$(state_epoch "$M")
    mkdir -p "$M/r$round"
    poll 600 epoch_after "$M" "$e0" ||
        fail "round $round: no periodic commit within 30 s of a change"
    rm -f "$T/killt"
    delay=$((RANDOM % 7000 + 500)) # ms
    (sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"; now >"$T/killt.tmp"
     mv "$T/killt.tmp" "$T/killt"; kill -KILL "$MPID") &
    killer=$!
    ops=0
    while alive; do
        if ! op; then
            alive && { tail -3 "$T/op.err" >&2; fail "round $round: an operation failed while mounted"; }
            break
        fi
        ops=$((ops + 1))
    done
    wait "$killer"
    wait "$MPID" 2>/dev/null || true
    MPID=
    kt=$(cat "$T/killt")
    fusermount3 -u -z "$M" 2>/dev/null || true
    poll 400 image_unlocked "$IMG" || fail "round $round: image still locked after the kill"
    rc=0
    "$VHDFSCK" -n --key-file "$KEY" "$IMG" >"$T/fsck.out" 2>&1 || rc=$?
    [[ $rc == 0 ]] || { cat "$T/fsck.out" >&2; fail "round $round: vhdfsck -n exit $rc after kill -9 (after $ops operations, ${delay} ms)"; }
    note "round $round: killed after $ops operations (${delay} ms); vhdfsck -n clean"
done
mnt_start "$IMG" "$M" --key-file "$KEY" -o commit=$COMMIT
check_promises "$kt"
mnt_stop "$M"
fsck_clean "$IMG" "$KEY"
note "$checked promises checked after $ROUNDS kills ($checked_old of them by age alone)"
((checked_old > 0)) || fail "no file was old enough at any kill: the age promise was never tested"
