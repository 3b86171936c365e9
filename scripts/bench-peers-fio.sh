#!/usr/bin/env bash
# bench-peers-fio.sh — the two fio jobs of issue 16's closing table, run
# directly (not through vhdbench) against a plain directory, gocryptfs,
# cryfs and vhdmount on the same disk, each job in its own fresh
# directory or mount, so the run can be repeated exactly:
#
#   seq write:  fio --rw=write --bs=1M --size=512M --end_fsync=1
#   rand r/w:   fio --rw=randrw --rwmixread=70 --bs=4k --fsync=32
#               (on a SIZE_RW file, time-based for RW_SECS seconds)
#
#   bash scripts/bench-peers-fio.sh [BUILD_DIR] [WORK_DIR]
#
# BUILD_DIR holds mkvhd/mkvhd and fusemount/vhdmount (default:
# build-release); WORK_DIR is where the images, cipher directories and
# mount points go (default: a new directory under /var/tmp, removed at
# the end). Needs fio, gocryptfs and cryfs (scripts/bench.sh --peers
# installs the last two). Environment: PEERS (default "dir gocryptfs
# cryfs vhdmount"), JOBS (default "seqwrite randrw"), SIZE_RW (default
# 256M), RW_SECS (default 20), ROUNDS (default 1: each round runs every
# peer once, in order), WARM_MIB (default 768: memory faulted in as huge
# pages and freed right before each fio run by scripts/warm-memory.py, as
# vhdbench --warm does, so no peer pays this VM host's first touch of
# fresh pages; 0: none).
# Prints one line per job and a table at the end; asserts nothing (the
# numbers depend on the machine and its load, which is printed too).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${1:-$SRC/build-release}
MKVHD=$B/mkvhd/mkvhd
VHDMOUNT=$B/fusemount/vhdmount
PEERS=${PEERS:-dir gocryptfs cryfs vhdmount}
SIZE_RW=${SIZE_RW:-256M}
RW_SECS=${RW_SECS:-20}
ROUNDS=${ROUNDS:-1}
JOBS=${JOBS:-seqwrite randrw}
WARM_MIB=${WARM_MIB:-768}

need() { command -v "$1" >/dev/null || { echo "bench-peers-fio: $1 not found${2:+ ($2)}" >&2; exit 2; }; }
need fio
for j in $JOBS; do
    [[ $j == seqwrite || $j == randrw ]] || { echo "bench-peers-fio: unknown job $j" >&2; exit 2; }
done
need python3
for p in $PEERS; do
    case $p in
    dir) ;;
    gocryptfs | cryfs) need "$p" "scripts/bench.sh --peers installs it" ;;
    vhdmount)
        for t in "$MKVHD" "$VHDMOUNT"; do
            [[ -x $t ]] || { echo "bench-peers-fio: $t not built" >&2; exit 2; }
        done
        ;;
    *) echo "bench-peers-fio: unknown peer $p" >&2; exit 2 ;;
    esac
done

W=${2:-$(mktemp -d /var/tmp/vdisk-peers-fio.XXXXXX)}
OWN_W=$([[ -z ${2:-} ]] && echo 1 || echo 0)
mkdir -p "$W"
W=$(cd "$W" && pwd)
printf 'vhdbench-peer-password\n' >"$W/password"
chmod 600 "$W/password"

MNT="" KIND="" PEER_PID=""
# fusermount3 -u returns once the kernel lets go; gocryptfs and cryfs then
# still write into their cipher directory, which the next fresh() removes:
# wait for the daemon to exit (up to 60 s).
peer_gone() {
    local i
    [[ -n $PEER_PID ]] || return 0
    for ((i = 0; i < 1200; i++)); do
        kill -0 "$PEER_PID" 2>/dev/null || return 0
        sleep 0.05
    done
    echo "bench-peers-fio: $KIND (pid $PEER_PID) did not exit after its unmount" >&2
    return 1
}
unmount() {
    [[ -n $MNT ]] || return 0
    if mountpoint -q "$MNT"; then
        if [[ $KIND == vhdmount ]]; then
            "$VHDMOUNT" -u -q "$MNT"
        else
            fusermount3 -u "$MNT"
        fi
    fi
    peer_gone
    MNT="" KIND="" PEER_PID=""
}
cleanup() {
    unmount || true
    if [[ $OWN_W == 1 ]]; then
        rm -rf -- "$W"
    else
        rm -rf -- "$W/run"
    fi
}
trap cleanup EXIT

# A fresh, empty target for one job: the directory fio writes in is
# $W/run/mnt, mounted when the peer is a file system.
fresh() {
    local p=$1 r=$W/run
    unmount
    rm -rf -- "$r"
    mkdir -p "$r/mnt"
    case $p in
    dir) return ;;
    gocryptfs)
        mkdir "$r/cipher"
        gocryptfs -q -init -scryptn 10 -passfile "$W/password" "$r/cipher" >/dev/null
        gocryptfs -q -passfile "$W/password" "$r/cipher" "$r/mnt" >/dev/null 2>&1
        ;;
    cryfs)
        mkdir "$r/cipher"
        CRYFS_FRONTEND=noninteractive CRYFS_NO_UPDATE_CHECK=true \
            cryfs --allow-replaced-filesystem "$r/cipher" "$r/mnt" <"$W/password" >/dev/null 2>&1
        ;;
    vhdmount)
        "$MKVHD" -q --size 2G --new-key-file "$r/vhd.key" "$r/peer.vhd" >/dev/null
        # A fresh image, not read into the page cache first: as
        # scripts/bench.sh says.
        "$VHDMOUNT" -q --key-file "$r/vhd.key" "$r/peer.vhd" "$r/mnt"
        ;;
    esac
    MNT=$r/mnt KIND=$p
    if [[ $p == gocryptfs || $p == cryfs ]]; then
        PEER_PID=$(pgrep -n -f -- "$r/cipher") || PEER_PID=""
    fi
    mountpoint -q "$MNT" || { echo "bench-peers-fio: $p did not mount" >&2; exit 1; }
}

# One fio job in a fresh target; prints "peer job value" on stdout.
results=$W/results
: >"$results"
job() {
    local p=$1 j=$2 d=$W/run/mnt
    fresh "$p"
    local args=(--name="$j" --directory="$d" --ioengine=psync --output-format=json)
    if [[ $j == seqwrite ]]; then
        args+=(--rw=write --bs=1M --size=512M --end_fsync=1)
    else
        args+=(--rw=randrw --rwmixread=70 --bs=4k --fsync=32 --size="$SIZE_RW"
            --time_based --runtime="$RW_SECS")
    fi
    python3 "$SRC/scripts/warm-memory.py" "$WARM_MIB"
    fio "${args[@]}" >"$W/fio.json"
    python3 - "$p" "$j" "$(cut -d' ' -f1 /proc/loadavg)" "$W/fio.json" >>"$results" <<'PY'
import json, sys
p, j, load, path = sys.argv[1:5]
job = json.load(open(path))["jobs"][0]
if j == "seqwrite":
    # bw is in KiB/s; the job's runtime includes the end_fsync.
    print(p, j, "%.0f" % (job["write"]["bw"] * 1024 / 1e6), load)
else:
    print(p, j, "%.0f/%.0f" % (job["read"]["iops"], job["write"]["iops"]), load)
PY
    tail -n 1 "$results" | awk '{ printf "bench-peers-fio: %-10s %-8s %s (load %s)\n", $1, $2, $3, $4 }' >&2
    unmount
}

echo "bench-peers-fio: $(date -u '+%F %T UTC'), load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, work dir $W" >&2
for ((round = 0; round < ROUNDS; round++)); do
    for p in $PEERS; do
        for j in $JOBS; do
            job "$p" "$j"
        done
    done
done

python3 - "$results" <<'PY'
import collections, sys
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    p, j, v, load = line.split()
    rows.setdefault(p, {"seqwrite": [], "randrw": []})[j].append(v)
print("| peer | fio seq write 1M + end_fsync (MB/s) | fio randrw 70/30 4k fsync=32 (read/write IOPS) |")
print("|---|---:|---:|")
for p, r in rows.items():
    print("| %s | %s | %s |" % (p, ", ".join(r["seqwrite"]), ", ".join(r["randrw"])))
PY
