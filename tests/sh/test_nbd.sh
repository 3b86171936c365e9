#!/usr/bin/env bash
# Images on NBD exports (issue 17): every tool takes an nbd+unix URI where
# it takes IMAGE. On `nbdkit memory` and on `nbdkit file`: mkvhd builds
# from a tree, vhdtool info/ls/get/cat/put read and write it, vhdfsck -n
# finds it clean, vhdmount mounts it (the FUSE part only where this machine
# can mount), and the tree read back is byte-identical to the source
# (sha256 of every file, computed from the source tree, not by our code).
# The image outlives its server: nbdkit restarted on the same file serves
# it again. Then what must be refused, each with one line and status 1:
# a scheme other than NBD's, no server, a read-only export for writing, a
# server that cannot flush, an export too small, an export that holds an
# image already (without --force). Last, an image file made locally and
# served by `nbdkit file` as it is (the export ends with its own footer).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/nbd_lib.sh"
runtime_dir_private
nbd_need

make_tree "$T/src"
sums "$T/src" >"$T/src.sums"

fuse_why() {
    [[ -x "$VHDMOUNT" ]] || { echo "vhdmount not built"; return; }
    command -v fusermount3 >/dev/null || { echo "fusermount3 missing"; return; }
    command -v mountpoint >/dev/null || { echo "mountpoint missing"; return; }
    [[ -r /dev/fuse && -w /dev/fuse ]] || { echo "/dev/fuse is not usable here"; return; }
    grep -qw fuse /proc/filesystems || { echo "the kernel has no fuse file system"; return; }
}
FUSE_WHY=$(fuse_why)

# mount_check URI KEY NAME: mount read-write, compare the tree, write a
# file through the mount, unmount (clean exit), read the file back.
mount_check() {
    local uri=$1 key=$2 name=$3 mnt=$T/mnt.$3 i rc=0
    if [[ -n "$FUSE_WHY" ]]; then
        note "FUSE part skipped on $name: $FUSE_WHY"
        return 0
    fi
    mkdir -p "$mnt"
    "$VHDMOUNT" -f --key-file "$key" "$uri" "$mnt" 2>"$T/mount.$name.log" &
    local mpid=$!
    for ((i = 0; i < 400; i++)); do
        mountpoint -q "$mnt" && break
        if ! kill -0 "$mpid" 2>/dev/null; then
            wait "$mpid" || rc=$?
            if grep -q 'kernel refused the FUSE mount' "$T/mount.$name.log"; then
                note "FUSE part skipped on $name: the kernel refuses FUSE mounts here"
                return 0
            fi
            cat "$T/mount.$name.log" >&2
            fail "vhdmount $uri exited $rc before mounting"
        fi
        sleep 0.05
    done
    mountpoint -q "$mnt" || fail "$mnt not mounted after 20 s"
    sums "$mnt" | diff - "$T/src.sums" >&2 || { fusermount3 -u "$mnt"; fail "tree under the mount of $name differs from the source"; }
    cp "$T/src/bin/app" "$mnt/etc/through-mount" || { fusermount3 -u "$mnt"; fail "write through the mount of $name"; }
    fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt"
    rc=0
    wait "$mpid" || rc=$?
    [[ $rc == 0 ]] || { cat "$T/mount.$name.log" >&2; fail "vhdmount on $name exited $rc after unmount"; }
    "$VHDTOOL" cat -q --key-file "$key" "$uri" /etc/through-mount >"$T/back.$name" ||
        fail "cat of the file written through the mount of $name"
    cmp "$T/back.$name" "$T/src/bin/app" || fail "file written through the mount of $name differs"
    "$VHDTOOL" rm -q --key-file "$key" "$uri" /etc/through-mount ||
        fail "rm of the file written through the mount of $name"
}

# tree_check URI KEY NAME: ls, get, cat, fsck on the image at URI.
tree_check() {
    local uri=$1 key=$2 name=$3
    expect_status 0 "$VHDTOOL" info "$uri"
    expect_out 'cipher: +AES-256-GCM'
    expect_status 0 "$VHDTOOL" ls -R -q --key-file "$key" "$uri" /
    expect_out 'A Long Module Name.py'
    expect_out 'libapp.so.1'
    rm -rf "$T/got.$name"
    expect_status 0 "$VHDTOOL" get -q --key-file "$key" "$uri" / "$T/got.$name"
    sums "$T/got.$name" | diff - "$T/src.sums" >&2 || fail "tree from $name differs from the source"
    [[ -d "$T/got.$name/empty dir" ]] || fail "empty directory missing from $name"
    "$VHDTOOL" cat -q --key-file "$key" "$uri" /bin/app | cmp - "$T/src/bin/app" ||
        fail "vhdtool cat /bin/app from $name differs"
    expect_status 0 "$VHDFSCK" -n -q --key-file "$key" "$uri"
}

# ---- nbdkit memory ------------------------------------------------------------
note "nbdkit memory"
nbd_start mem memory size=96M
U=$(nbd_uri mem)
expect_status 0 "$MKVHD" -q --new-key-file "$T/k.mem" "$U" "$T/src"
tree_check "$U" "$T/k.mem" mem
mount_check "$U" "$T/k.mem" mem
tree_check "$U" "$T/k.mem" mem
# the image fills the export (no --size): volume within 4 MiB of 96 MiB
expect_status 0 "$VHDTOOL" info --json "$U"
fb=$(grep -o '"file_bytes": *[0-9]*' "$T/out" | grep -o '[0-9]*$')
[[ -n "$fb" ]] || fail "vhdtool info --json has no file_bytes"
((fb <= 96 * 1048576 - 512 && fb > 95 * 1048576)) || fail "image of $fb bytes does not fill a 96 MiB export"
# a second mkvhd refuses the export that holds an image; --force replaces it
expect_status 1 "$MKVHD" -q --new-key-file "$T/k.mem2" "$U" "$T/src"
expect_err 'holds a vdisk image \(give --force'
one_line_err
[[ ! -e "$T/k.mem2" ]] || fail "a refused mkvhd left its new key file"
expect_status 0 "$MKVHD" -q --force --size 40M --new-key-file "$T/k.mem2" "$U" "$T/src"
expect_status 0 "$VHDTOOL" info "$U"
expect_out 'volume size: +40.0 MiB'
tree_check "$U" "$T/k.mem2" mem2
expect_status 3 "$VHDTOOL" ls -q --key-file "$T/k.mem" "$U" /
nbd_stop mem

# ---- nbdkit file ----------------------------------------------------------------
note "nbdkit file"
truncate -s 80M "$T/disk.img"
nbd_start file file "$T/disk.img"
U=$(nbd_uri file)
expect_status 0 "$MKVHD" -q --new-key-file "$T/k.file" --anchor "$T/a.file" "$U" "$T/src"
tree_check "$U" "$T/k.file" file
mount_check "$U" "$T/k.file" file
expect_status 0 "$VHDTOOL" put -q --key-file "$T/k.file" --anchor "$T/a.file" "$U" "$T/src/lib/libapp.so.1" /added
nbd_stop file
# the same file under a new server: the image and its commits are there
nbd_start file2 file "$T/disk.img"
U=$(nbd_uri file2)
expect_status 0 "$VHDTOOL" cat -q --key-file "$T/k.file" --anchor "$T/a.file" "$U" /added
cmp "$T/out" "$T/src/lib/libapp.so.1" || fail "/added differs after a server restart"
expect_status 0 "$VHDTOOL" rm -q --key-file "$T/k.file" --anchor "$T/a.file" "$U" /added
tree_check "$U" "$T/k.file" file2
nbd_stop file2

# ---- a local image file served as it is ---------------------------------------------
note "local image file under nbdkit file"
expect_status 0 "$MKVHD" -q --new-key-file "$T/k.local" "$T/local.vhd" "$T/src"
nbd_start local file "$T/local.vhd"
tree_check "$(nbd_uri local)" "$T/k.local" local
expect_status 0 "$VHDTOOL" put -q --key-file "$T/k.local" "$(nbd_uri local)" "$T/src/etc/app.conf" /conf2
nbd_stop local
# and back as a local file: the same image, with the write made over NBD
expect_status 0 "$VHDTOOL" cat -q --key-file "$T/k.local" "$T/local.vhd" /conf2
cmp "$T/out" "$T/src/etc/app.conf" || fail "/conf2 written over NBD differs in the local file"
expect_status 0 "$VHDFSCK" -n -q --key-file "$T/k.local" "$T/local.vhd"

# ---- refusals -----------------------------------------------------------------------
note "refusals"
expect_status 1 "$VHDTOOL" ls -q --key-file "$T/k.local" "http://localhost/x" /
expect_err 'unsupported URI scheme .http.'
one_line_err
expect_status 1 "$VHDTOOL" info "nbd+vsock://1/x"
expect_err 'unsupported URI scheme .nbd\+vsock.'
expect_status 1 "$VHDTOOL" info "nbd+unix:///?socket=$T/nobody.sock"
expect_err "nbd\+unix:///\?socket=$T/nobody.sock: .*(No such file|onnect)"
one_line_err
expect_status 8 "$VHDFSCK" -n -q --key-file "$T/k.local" "nbd+unix:///?socket=$T/nobody.sock"
one_line_err

# read-only export: reading works, writing is refused at open
nbd_start ro -r file "$T/local.vhd"
expect_status 0 "$VHDTOOL" cat -q --key-file "$T/k.local" "$(nbd_uri ro)" /etc/app.conf
cmp "$T/out" "$T/src/etc/app.conf" || fail "read through a read-only export differs"
expect_status 1 "$VHDTOOL" put -q --key-file "$T/k.local" "$(nbd_uri ro)" "$T/src/etc/app.conf" /x
expect_err 'the NBD export is read-only'
one_line_err
nbd_stop ro

# a server without flush: no writable open (a sync could not be durable)
nbd_start noflush eval get_size='echo 67108864' \
    pread='dd if=/dev/zero count=$3 iflag=count_bytes status=none' pwrite='cat >/dev/null'
expect_status 1 "$MKVHD" -q --new-key-file "$T/k.nf" "$(nbd_uri noflush)" "$T/src"
expect_err 'cannot flush'
one_line_err
nbd_stop noflush

# too small, with and without --size
nbd_start small memory size=8M
expect_status 1 "$MKVHD" -q --new-key-file "$T/k.s" "$(nbd_uri small)" "$T/src"
expect_err 'the export is too small'
one_line_err
expect_status 1 "$MKVHD" -q --size 100M --new-key-file "$T/k.s" "$(nbd_uri small)"
expect_err 'the export is too small: a 100.0 MiB volume needs'
one_line_err
nbd_stop small
note "ok"
