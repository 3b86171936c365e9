#!/usr/bin/env bash
# The main job: install what is missing, build, and tour the tools on a
# fresh image in a temporary directory (removed on exit):
#
#   bash scripts/demo.sh
#
#  1. mkvhd builds an encrypted image from an application tree (a program
#     compiled now, symbolic links to it and to a directory, a script), with
#     a new key file and a freshness anchor; qemu-img reads it as a fixed
#     VHD; the same tree also goes in as a tar stream;
#  2. vhdtool shows the header without a key, then lists (links as
#     name -> target) and reads files with the key; the plaintext appears
#     nowhere in the image file;
#  3. vhdmount mounts it through FUSE (when /dev/fuse is usable), the
#     program runs from the mount through a link, a file is added with
#     ordinary tools, unmount syncs;
#  4. vhdfsck verifies every block and the FAT32 structure: clean;
#  5. a flipped bit in one encrypted block: vhdtool and vhdfsck name the
#     block and the file (exit 4); a wrong key is refused (exit 3);
#  6. an old copy of the image put back (rollback across restarts): the
#     anchor catches it (exit 4).
# Exits non-zero if any step does not behave as shown.
#
# Environment: BUILD_DIR (default: build), BUILD_TYPE (default: Release).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

export BUILD_DIR=${BUILD_DIR:-build}
case "$BUILD_DIR" in /*) B=$BUILD_DIR ;; *) B=$ROOT/$BUILD_DIR ;; esac

section() { printf '\n==== %s ====\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }
show() { printf '$ %s\n' "$*"; "$@"; }
# expect N CMD...: run CMD, show its output, require exit status N.
expect() {
    local want=$1 got=0
    shift
    printf '$ %s\n' "$*"
    "$@" || got=$?
    [[ "$got" == "$want" ]] || die "exit status $got, expected $want: $*"
    echo "(exit status $got, as expected)"
}

section "Build ($BUILD_DIR)"
bash "$ROOT/scripts/build.sh"

MKVHD=$B/mkvhd/mkvhd
VHDTOOL=$B/vhdtool/vhdtool
VHDFSCK=$B/fsck/vhdfsck
VHDMOUNT=$B/fusemount/vhdmount
for t in "$MKVHD" "$VHDTOOL" "$VHDFSCK"; do
    [[ -x "$t" ]] || die "$t was not built"
done

W=$(mktemp -d "${TMPDIR:-/tmp}/vdisk-demo.XXXXXX")
MNT=$W/mnt
cleanup() {
    if mountpoint -q "$MNT" 2>/dev/null; then fusermount3 -u "$MNT" 2>/dev/null || true; fi
    rm -rf -- "$W"
}
trap cleanup EXIT
cd "$W"

section "1. mkvhd: an application tree into an encrypted image"
MARKER="PLAINTEXT-MARKER-$$-the-quick-brown-fox"
mkdir -p app/bin app/etc app/lib/app-1.0 "app/data/Ünïcödé façade"
cat >server.c <<'EOF'
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    const char *me = strrchr(argv[0], '/');
    printf("server: started as %s, %d argument(s), served by vdisk\n",
           me ? me + 1 : argv[0], argc - 1);
    return 0;
}
EOF
CC=${CC:-cc}
command -v "$CC" >/dev/null || die "no C compiler ($CC) to build the demo's program"
show "$CC" -O2 -o app/lib/app-1.0/server server.c
ln -s app-1.0 app/lib/app               # a link to a directory
ln -s ../lib/app/server app/bin/start   # the program, through two links
printf '#!/bin/sh\necho "served by vdisk"\n' >app/bin/start.sh
printf 'listen = 8080\nsecret = %s\n' "$MARKER" >app/etc/server.conf
head -c 3000000 /dev/urandom >"app/data/Ünïcödé façade/model.bin"
touch -d '2024-02-29 12:34:56' app/etc/server.conf
show "$MKVHD" --new-key-file app.key --anchor app.anchor --label APP app.vhd app
ls -l app.vhd app.key app.anchor
if command -v qemu-img >/dev/null 2>&1; then
    show qemu-img info -f vpc app.vhd | grep -E '^(file format|virtual size)'
    want=$(($(stat -c %s app.vhd) - 512))
    qemu-img info -f vpc app.vhd | grep -q "($want bytes)" ||
        die "qemu-img does not report the container size $want"
else
    echo "(qemu-img not installed; the VHD check is skipped)"
fi

echo "The same tree as a tar stream (docker export | mkvhd --tar - works alike):"
printf '$ tar -C app -cf - . | mkvhd --tar - --new-key-file tar.key tar.vhd\n'
tar -C app -cf - . | "$MKVHD" --tar - --new-key-file tar.key tar.vhd 2>/dev/null
printf '$ vhdtool export --tar --key-file tar.key tar.vhd - | tar -tvf - | grep -- "->"\n'
"$VHDTOOL" export -q --tar --key-file tar.key tar.vhd - | tar -tvf - | grep -- '->'

section "2. vhdtool: header without a key, files with it"
show "$VHDTOOL" info app.vhd
show "$VHDTOOL" ls -l -R --key-file app.key --anchor app.anchor app.vhd
show "$VHDTOOL" cat --key-file app.key --anchor app.anchor app.vhd /etc/server.conf
"$VHDTOOL" get -q --key-file app.key --anchor app.anchor app.vhd / out
diff -r app out && echo "vhdtool get: the tree comes back identical (diff -r)"
if grep -qa "$MARKER" app.vhd; then die "the plaintext marker is in the image file"; fi
echo "grep: the plaintext of server.conf appears nowhere in app.vhd"

section "3. vhdmount: the image as a directory (FUSE)"
fuse_ok=0
if [[ ! -x "$VHDMOUNT" ]]; then
    echo "(vhdmount not built: libfuse3-dev missing; skipped)"
elif [[ ! -c /dev/fuse ]] || ! command -v fusermount3 >/dev/null 2>&1; then
    echo "(no /dev/fuse or fusermount3 here; skipped)"
else
    mkdir -p "$MNT"
    if "$VHDMOUNT" --key-file app.key --anchor app.anchor app.vhd "$MNT"; then
        fuse_ok=1
        show ls -la "$MNT" "$MNT/etc" "$MNT/bin"
        show readlink "$MNT/bin/start"
        # The program itself, from the mounted image, through its links:
        # no sh in front (files are executable, as on a vfat mount).
        show "$MNT/bin/start" --port 8080 | tee run.out
        grep -q 'served by vdisk' run.out || die "the program did not run from the mount"
        show cp app/bin/start.sh "$MNT/bin/restart.sh"
        show "$MNT/bin/restart.sh"
        show df -h "$MNT"
        show fusermount3 -u "$MNT"
        # The daemon closes the image (sync, dirty flag off, anchor
        # advanced) as it exits; its lock tells when it is gone.
        for _ in $(seq 100); do
            flock -n app.vhd true 2>/dev/null && break
            sleep 0.1
        done
        show "$VHDTOOL" ls -q --key-file app.key --anchor app.anchor app.vhd /bin
    else
        echo "(vhdmount could not mount here, e.g. inside a container without FUSE; skipped)"
    fi
fi

section "4. vhdfsck: every block verified, FAT32 checked"
expect 0 "$VHDFSCK" -n --key-file app.key --anchor app.anchor app.vhd

section "5. Tampering: one flipped bit in one encrypted block"
# Find the logical block that holds server.conf (in the decrypted volume),
# then flip one bit of its ciphertext in a copy of the image.
"$VHDTOOL" export -q --key-file app.key --anchor app.anchor app.vhd vol.raw
off=$(grep -oba "listen = 8080" vol.raw | head -1 | cut -d: -f1)
[[ -n "$off" ]] || die "server.conf not found in the exported volume"
data_start=$("$VHDTOOL" info --json app.vhd | sed -n 's/.*"data_start": \([0-9]*\).*/\1/p')
lbn=$((off / 4096))
byte=$(((data_start + lbn) * 4096 + 100))
echo "server.conf is in logical block $lbn = physical block $((data_start + lbn)); flipping one bit at byte $byte"
cp app.vhd tampered.vhd
cp app.anchor tampered.anchor
orig=$(od -An -tu1 -j "$byte" -N1 tampered.vhd | tr -d ' ')
printf "$(printf '\\%03o' $((orig ^ 1)))" |
    dd of=tampered.vhd bs=1 seek="$byte" count=1 conv=notrunc status=none
expect 4 "$VHDTOOL" cat -q --key-file app.key --anchor tampered.anchor tampered.vhd /etc/server.conf
expect 4 "$VHDFSCK" -n -q --key-file app.key --anchor tampered.anchor tampered.vhd
head -c 32 /dev/urandom >wrong.key
expect 3 "$VHDTOOL" ls -q --key-file wrong.key --anchor app.anchor app.vhd

section "6. Rollback across restarts: an old copy put back"
cp app.vhd old.vhd
show "$VHDTOOL" put -q --key-file app.key --anchor app.anchor app.vhd app/etc/server.conf /etc/server.conf.new
cp old.vhd app.vhd
echo "(the image file was replaced by the copy taken before the put)"
expect 4 "$VHDTOOL" ls -q --key-file app.key --anchor app.anchor app.vhd /etc
echo "without the anchor the old copy would open: freshness across restarts needs it"

section "Demo OK"
echo "built, listed, read, $( ((fuse_ok)) && echo 'mounted, ' )verified; tampering, a wrong key and a rollback were caught"
