#!/bin/bash
# Key rotation throughput against the AES-GCM ceiling (docs/PERFORMANCE.md
# "Key rotation"): a 272 MiB image holding four 62 MiB random files (about
# 260 MB of written blocks) is copied and rotated with
# `vhdtool rekey -q --key-file key --drop-unlock --new-key-file K`, page
# cache warm, then vhdbench's single-core seal ceiling is taken in the
# same minute (vhdbench's median of nine samples). With several --build
# directories (A/B) the builds are interleaved inside every round. Prints
# one line per build and round (wall, user, sys, MB/s of written data per
# wall second, % of the seal ceiling), one `dd` line per round (the image
# copied over the rotated one in place, bs=1M conv=notrunc,fdatasync: the
# same bytes read, written and flushed without any crypto, the floor the
# storage sets) and the load average at the start, after every round and
# at the end. Before each rotation WARM_MIB (default 256) MiB are faulted
# in and freed (scripts/warm-memory.py), as vhdbench --warm does before
# its timed phases.
#
#   bash scripts/bench-rekey.sh [--build DIR]... [--dir WORK] [--rounds N]
#                               [--mib-per-file N] [--huge-tmpfs]
# --huge-tmpfs (root, or sudo) mounts a private tmpfs with huge=always in
# WORK for the run: memory as storage without tmpfs's per-4-KiB-page work
# (LRU and folio locks in every pread and pwrite, ~0.3 CPU-s per GB of a
# rotation on /dev/shm, as much as one AES pass on this VM's other core).
# DIR holds vhdtool/vhdtool, mkvhd/mkvhd and bench/vhdbench (a Release
# build; default build-release, built if missing) or the three binaries
# side by side.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
builds=()
work=${TMPDIR:-/tmp}
rounds=3
mib=62
huge=0
while (($#)); do
    case $1 in
    --build) builds+=("$2"); shift 2 ;;
    --dir) work=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --mib-per-file) mib=$2; shift 2 ;;
    --huge-tmpfs) huge=1; shift ;;
    -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "bench-rekey.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
((${#builds[@]})) || builds=("$src/build-release")
tool() { # build dir, tool name
    local d=$1 t=$2 sub
    case $t in vhdtool) sub=vhdtool ;; mkvhd) sub=mkvhd ;; vhdbench) sub=bench ;; esac
    if [[ -x $d/$sub/$t ]]; then echo "$d/$sub/$t"; else echo "$d/$t"; fi
}
for b in "${builds[@]}"; do
    if [[ ! -x $(tool "$b" vhdtool) ]]; then
        echo "building Release in $b" >&2
        cmake -S "$src" -B "$b" -DCMAKE_BUILD_TYPE=Release -DVD_BUILD_TESTS=OFF >/dev/null
        cmake --build "$b" -j2 >/dev/null
    fi
done
command -v /usr/bin/time >/dev/null || { echo "bench-rekey.sh: /usr/bin/time is needed" >&2; exit 1; }

d=$(mktemp -d "$work/bench-rekey.XXXXXX")
trap 'rm -rf "$d"' EXIT
if ((huge)); then
    sudo=()
    ((EUID == 0)) || sudo=(sudo)
    # The image, its working copy and room to spare.
    "${sudo[@]}" mount -t tmpfs -o "size=$((12 * mib + 256))M,huge=always,mode=0700" \
        bench-rekey "$d"
    "${sudo[@]}" chown "$(id -u):$(id -g)" "$d"
    trap '"${sudo[@]}" umount "$d"; rm -rf "$d"' EXIT
    echo "storage: tmpfs huge=always at $d"
fi
mkdir "$d/tree"
for i in 1 2 3 4; do head -c $((mib << 20)) /dev/urandom >"$d/tree/f$i"; done
"$(tool "${builds[0]}" mkvhd)" -q --size $((4 * mib + 24))M --new-key-file "$d/key" "$d/img.vhd" "$d/tree"
rm -rf "$d/tree"
bytes=$((4 * mib << 20))
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-5s %-40s %7s %6s %6s %9s %9s %6s\n' round build wall user sys "MB/s" ceiling "%"
for r in $(seq 1 "$rounds"); do
    for b in "${builds[@]}"; do
        cp "$d/img.vhd" "$d/w.vhd"
        rm -f "$d/K"
        sync "$d/w.vhd"
        python3 "$src/scripts/warm-memory.py" "${WARM_MIB:-256}"
        /usr/bin/time -o "$d/t" -f '%e %U %S' "$(tool "$b" vhdtool)" rekey -q \
            --key-file "$d/key" --drop-unlock --new-key-file "$d/K" "$d/w.vhd"
        read -r wall user sys <"$d/t"
        # vhdbench's figure (the median of its repetitions) over nine 32 MiB
        # seals, about a second of them: one 10 ms sample is a lottery on
        # this shared host, the best of a few overstates what a core gave
        # in the minute the rotation ran.
        ceil=$("$(tool "$b" vhdbench)" --quick --reps 9 --modes plain --backends memory \
                   --warm 0 --no-scale 2>/dev/null | awk '/aes-gcm-seal-openssl/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.,]+$/) {gsub(",", "", $i); print $i; exit}}')
        awk -v r="$r" -v b="$b" -v w="$wall" -v u="$user" -v s="$sys" -v n="$bytes" -v c="${ceil:-0}" \
            'BEGIN { m = n / 1e6 / w; printf "%-5s %-40s %7.3f %6.2f %6.2f %9.0f %9.0f %6.1f\n", r, b, w, u, s, m, c, (c > 0 ? 100 * m / c : 0) }'
    done
    /usr/bin/time -o "$d/t" -f '%e %U %S' dd if="$d/img.vhd" of="$d/w.vhd" bs=1M \
        conv=notrunc,fdatasync status=none
    read -r wall user sys <"$d/t"
    awk -v r="$r" -v w="$wall" -v u="$user" -v s="$sys" -v n="$(stat -c %s "$d/img.vhd")" \
        'BEGIN { printf "%-5s %-40s %7.3f %6.2f %6.2f %9.0f\n", r, "dd (copy in place, no crypto)", w, u, s, n / 1e6 / w }'
    echo "load after round $r: $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
