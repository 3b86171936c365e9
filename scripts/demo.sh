#!/usr/bin/env bash
# Build everything and run the main demo.
#
#   bash scripts/demo.sh [MIB]
#
# Runs vdisk-demo on a fresh image in a temporary directory (removed on
# exit): create a fixed VHD, write and verify every block, refuse a wrong
# key, catch a flipped bit. Then shows that qemu-img reads the image as a
# fixed VHD of the right virtual size (DESIGN.md §7). Exits non-zero if any
# step fails.
#
# The tools are planned: as mkvhd, vhdtool, vhdfsck and vhdmount land, this
# script grows into their tour (build an image from a directory, list and
# read it with vhdtool, check it with vhdfsck, mount it with vhdmount).
#
# Environment: BUILD_DIR (default: build), BUILD_TYPE (default: Release).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

export BUILD_DIR=${BUILD_DIR:-build}
MIB=${1:-64}

section() { printf '\n==== %s ====\n' "$*"; }

section "Build ($BUILD_DIR)"
bash "$ROOT/scripts/build.sh"

DEMO=$BUILD_DIR/examples/vdisk-demo
if [[ ! -x "$DEMO" ]]; then
    echo "demo: $DEMO was not built" >&2
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vdisk-demo.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT
IMAGE=$WORK/demo.vhd

section "vdisk-demo: create, write, verify, wrong key, tamper ($MIB MiB)"
"$DEMO" "$IMAGE" "$MIB"

section "The image file"
ls -l "$IMAGE"

section "VHD footer (last 512 bytes of the file)"
# Cookie "conectix" at offset 0, disk type (big-endian u32) at offset 60:
# 2 means a fixed disk, the only kind qemu-img maps as one flat file.
cookie=$(tail -c 512 "$IMAGE" | head -c 8)
dtype=$(tail -c 512 "$IMAGE" | od -An -tu1 -j60 -N4 | tr -s ' ' | sed 's/^ //')
echo "cookie: $cookie, disk type bytes: $dtype"
if [[ "$cookie" != conectix || "$dtype" != "0 0 0 2" ]]; then
    echo "demo: $IMAGE does not end with a fixed-VHD footer" >&2
    exit 1
fi
echo "footer: fixed VHD"

section "qemu-img info -f vpc (qemu reads it as a VHD of the right size)"
if command -v qemu-img >/dev/null 2>&1; then
    info=$(qemu-img info -f vpc "$IMAGE")
    printf '%s\n' "$info"
    # The whole file is the disk (blocks + 512-byte footer); qemu-img must
    # report exactly file size - 512 as the virtual size, and a fixed disk.
    want=$(($(stat -c %s "$IMAGE") - 512))
    got=$(printf '%s\n' "$info" | sed -n 's/^virtual size: .*(\([0-9]*\) bytes).*/\1/p')
    if [[ "$got" != "$want" ]]; then
        echo "demo: qemu-img reports virtual size '${got}', expected $want" >&2
        exit 1
    fi
    if ! printf '%s\n' "$info" | grep -q '^file format: vpc'; then
        echo "demo: qemu-img does not read the image as vpc" >&2
        exit 1
    fi
    # The VHD's disk is the whole container (header, tree, journal and the
    # MIB of data blocks), so it is a little larger than MIB.
    echo "qemu-img: valid fixed VHD, virtual size $got bytes = container size" \
        "($MIB MiB of data plus metadata)"
else
    echo "qemu-img not installed; skipped (bash scripts/setup.sh installs it)"
fi

section "Demo OK"
