# Helpers for tests/sh/test_vhdmount*.sh (sourced after lib.sh): start a
# mount in the foreground in the background, wait for it by polling the
# mount table and the image lock (never fixed sleeps), and tear everything
# down on exit even when a check failed.

VDFSX=$VD_BUILD/fusemount/vdfsx
VDRENAME=$VD_BUILD/fusemount/vdrename
MPID=

# Skips (exit 77, reason printed) when this machine cannot FUSE-mount.
fuse_need() {
    need "$VHDMOUNT" "$MKVHD" fusermount3 mountpoint flock
    [[ -e /dev/fuse ]] || skip "/dev/fuse does not exist (no FUSE in this kernel or container)"
    [[ -r /dev/fuse && -w /dev/fuse ]] || skip "/dev/fuse is not readable and writable by $(id -un)"
    grep -qw fuse /proc/filesystems || skip "the kernel has no fuse file system"
}

_vm_cleanup() {
    local m
    for m in "$T"/mnt*; do
        # Unconditionally: a mount whose daemon died answers stat with
        # ENOTCONN, so "mountpoint -q" would call it no mount and leave it.
        fusermount3 -u -z "$m" 2>/dev/null
    done
    [[ -n "$MPID" ]] && kill -0 "$MPID" 2>/dev/null && kill -KILL "$MPID" 2>/dev/null
    return 0
}
at_exit _vm_cleanup

# poll N CMD...: run CMD every 50 ms until it succeeds, at most N times.
poll() {
    local n=$1 i
    shift
    for ((i = 0; i < n; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}

image_unlocked() { flock -n "$1" true; }

# image_new SIZE: a new image $IMG ($T/img.vhd) with its key file $KEY
# ($T/key), and an empty mountpoint $M ($T/mnt).
image_new() {
    KEY=$T/key
    IMG=$T/img.vhd
    M=$T/mnt
    mkdir "$M"
    expect_status 0 "$MKVHD" -q --size "$1" --new-key-file "$KEY" "$IMG"
}

# vhdmount's state files (state_epoch reads them) in this test's own
# runtime directory (lib.sh).
runtime_dir_private

# mnt_start IMAGE MOUNTPOINT [vhdmount options...]: vhdmount -f in the
# background (pid in MPID, stderr in $T/vhdmount.log); returns once the
# mount is up and the daemon has answered the kernel's INIT. The mount
# shows in the mount table before INIT is answered, and an unmount in that
# gap ends the session without init ever running (seen under TSan: no
# "writeback cache" line in the -d log); a stat of the root is a request,
# and the kernel holds requests until INIT is answered. The first mount of
# a test skips when the kernel refuses FUSE mounts here (containers
# without the capability).
mnt_start() {
    local img=$1 mnt=$2
    shift 2
    : >"$T/vhdmount.log"
    "$VHDMOUNT" -f "$@" "$img" "$mnt" 2>"$T/vhdmount.log" &
    MPID=$!
    local i
    for ((i = 0; i < 400; i++)); do
        if mountpoint -q "$mnt"; then
            stat "$mnt" >/dev/null || fail "stat $mnt after mounting"
            return 0
        fi
        if ! kill -0 "$MPID" 2>/dev/null; then
            local rc=0
            wait "$MPID" || rc=$?
            MPID=
            if grep -q 'kernel refused the FUSE mount' "$T/vhdmount.log"; then
                skip "FUSE mounts are refused here: $(grep -v 'freshness across' "$T/vhdmount.log" | head -2 | tr '\n' ' ')"
            fi
            cat "$T/vhdmount.log" >&2
            fail "vhdmount exited $rc before mounting $mnt"
        fi
        sleep 0.05
    done
    fail "$mnt not mounted after 20 s"
}

# mnt_stop MOUNTPOINT: fusermount3 -u, then the daemon must exit 0 (the
# clean unmount: volume synced, dirty flag cleared, image closed).
mnt_stop() {
    fusermount3 -u "$1" || fail "fusermount3 -u $1"
    local rc=0
    wait "$MPID" || rc=$?
    MPID=
    [[ $rc == 0 ]] || { cat "$T/vhdmount.log" >&2; fail "vhdmount exited $rc after unmount"; }
}

# fsck_clean IMAGE KEY: vhdfsck -n must find nothing to fix (skipped with a
# note while vhdfsck is not built).
fsck_clean() {
    if [[ ! -x "$VHDFSCK" ]]; then
        note "vhdfsck not built: skipping the fsck check of $1"
        return 0
    fi
    expect_status 0 "$VHDFSCK" -n --key-file "$2" "$1"
}

# state_epoch MOUNTPOINT: the epoch of the last commit vhdmount made there,
# from its state file (written once a periodic commit is complete: the
# event tests wait for), in this test's XDG_RUNTIME_DIR (set above).
state_epoch() {
    local mp f
    mp=$(realpath "$1")
    f=$(grep -lx "mountpoint $mp" "$XDG_RUNTIME_DIR"/vhdmount/mnt-* 2>/dev/null | head -1)
    [[ -n $f ]] && sed -n 's/^epoch //p' "$f"
}
# epoch_after MOUNTPOINT N: a commit after epoch N is complete.
epoch_after() { local e; e=$(state_epoch "$1"); [[ -n $e && $e -gt $2 ]]; }
