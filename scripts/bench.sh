#!/usr/bin/env bash
# Build vhdbench (Release) and run it; with --peers also run the same
# workloads through FUSE in a plain directory, gocryptfs, cryfs and
# vhdmount (full mode), and vhdbench-mount (the same FUSE code over the
# bench-only aead device), in
# the same vhdbench run; sqlite3 runs a scripted database in each.
#
#   bash scripts/bench.sh [--quick] [--peers] [--drop-caches] [--out DIR]
#                         [-- EXTRA VHDBENCH ARGS...]
#
#   --quick        vhdbench --quick (64 MiB sequential; a few minutes)
#   --peers        install Debian's gocryptfs and cryfs if missing
#                  (apt-get, needs root), build mkvhd and vhdmount, mount
#                  the three file systems under DIR/peers and pass them to
#                  vhdbench with --peer; unmounted on exit
#   --drop-caches  vhdbench --drop-caches (root: drops the page cache
#                  before every read phase)
#   --out DIR      where results and scratch files go (default:
#                  build-release/bench-out): vhdbench.txt, vhdbench.json,
#                  perf-overhead.svg
#
# Environment: BUILD_DIR (default: build-release). Copy the results into
# docs/PERFORMANCE.md and docs/perf-overhead.svg by hand: a run is only
# worth publishing with its machine and load written next to it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() {
    echo "usage: bash scripts/bench.sh [--quick] [--peers] [--drop-caches] [--out DIR] [-- VHDBENCH ARGS...]" >&2
}

quick=0 peers=0 drop=0
BUILD_DIR=${BUILD_DIR:-build-release}
out=""
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
    --quick) quick=1 ;;
    --peers) peers=1 ;;
    --drop-caches) drop=1 ;;
    --out) [[ $# -ge 2 ]] || { usage; exit 2; }; out=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) usage; exit 0 ;;
    *) usage; exit 2 ;;
    esac
    shift
done
out=${out:-$BUILD_DIR/bench-out}

echo "bench: configuring $BUILD_DIR (Release)"
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
targets=(vhdbench)
[[ $peers == 1 ]] && targets+=(mkvhd vhdmount vhdbench-mount)
cmake --build "$BUILD_DIR" -j2 --target "${targets[@]}"

mkdir -p "$out/scratch"
out=$(cd "$out" && pwd)
args=(--dir "$out/scratch" --json "$out/vhdbench.json" --svg "$out/perf-overhead.svg")
[[ $quick == 1 ]] && args+=(--quick)
[[ $drop == 1 ]] && args+=(--drop-caches)

mounts=()
cleanup() {
    local m
    for m in "${mounts[@]}"; do fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    [[ -d "$out/peers" ]] && rm -rf -- "$out/peers"
}
trap cleanup EXIT

if [[ $peers == 1 ]]; then
    if ! command -v gocryptfs >/dev/null || ! command -v cryfs >/dev/null; then
        echo "bench: installing gocryptfs and cryfs (Debian packages)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gocryptfs cryfs >/dev/null
    fi
    p=$out/peers
    rm -rf -- "$p"
    mkdir -p "$p/dir" "$p/gocryptfs.cipher" "$p/gocryptfs" "$p/cryfs.cipher" "$p/cryfs" \
        "$p/vhdmount" "$p/vhdmount-aead"
    printf 'vhdbench-peer-password\n' >"$p/password"
    chmod 600 "$p/password"

    args+=(--peer "dir=$p/dir")

    # gocryptfs: AES-256-GCM per 4 KiB block with a random nonce, file
    # names encrypted; no rollback detection. A low scrypt cost only
    # shortens the mount, not the I/O.
    gocryptfs -q -init -scryptn 10 -passfile "$p/password" "$p/gocryptfs.cipher"
    gocryptfs -q -passfile "$p/password" "$p/gocryptfs.cipher" "$p/gocryptfs" 2>/dev/null
    mounts+=("$p/gocryptfs")
    args+=(--peer "gocryptfs=$p/gocryptfs")

    # cryfs: fixed-size encrypted blocks in a tree, directory structure
    # hidden; detects some rollback within a device's known state only.
    # cryfs remembers each base directory's filesystem id (in ~/.local);
    # a fresh one at a reused path is allowed explicitly.
    CRYFS_FRONTEND=noninteractive CRYFS_NO_UPDATE_CHECK=true \
        cryfs --allow-replaced-filesystem "$p/cryfs.cipher" "$p/cryfs" <"$p/password" >/dev/null
    mounts+=("$p/cryfs")
    args+=(--peer "cryfs=$p/cryfs")

    # vhdmount: the full scheme through FUSE.
    size=4G
    [[ $quick == 1 ]] && size=1G
    "$BUILD_DIR/mkvhd/mkvhd" --size "$size" --new-key-file "$p/vhd.key" "$p/peer.vhd"
    # Not read into the page cache first (it was, with cat, until
    # 2026-12-07): a fresh image, as the other peers start from fresh
    # directories. vhdbench --warm now covers what the read was for (this
    # VM's first touch of fresh memory), and on this VM's 8 MiB readahead
    # the read left 2 MiB page-cache folios that ext4 walks block by block
    # on every write into them: vhdmount's fio randrw 23-39 % fewer read
    # IOPS (docs/PERFORMANCE.md, "Writes in 256 KiB pieces").
    "$BUILD_DIR/fusemount/vhdmount" --key-file "$p/vhd.key" "$p/peer.vhd" "$p/vhdmount"
    mounts+=("$p/vhdmount")
    args+=(--peer "vhdmount=$p/vhdmount")

    # vhdmount-aead: the same FAT32 layer and FUSE code over vhdbench's
    # AEAD-only device (no tree, no rollback detection; bench/mount.c, a
    # bench-only binary that vhdmount does not contain): full vs this is
    # the rollback detection's cost through FUSE. Its files go at unmount.
    truncate -s "$size" "$p/peer-aead.dat"
    "$BUILD_DIR/bench/vhdbench-mount" "aead:$p/peer-aead.dat" "$p/vhdmount-aead"
    mounts+=("$p/vhdmount-aead")
    args+=(--peer "vhdmount-aead=$p/vhdmount-aead")
fi

echo "bench: $BUILD_DIR/bench/vhdbench ${args[*]} ${extra[*]}"
"$BUILD_DIR/bench/vhdbench" "${args[@]}" "${extra[@]}" | tee "$out/vhdbench.txt"
echo "bench: results in $out (vhdbench.txt, vhdbench.json, perf-overhead.svg)"
