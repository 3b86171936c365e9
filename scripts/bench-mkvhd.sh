#!/bin/bash
# Image building time: mkvhd of a tree against mkfs.fat + mcopy -s of the
# same tree into a plain file (the unencrypted FAT32 way), with tar -x of
# the same tree for reference, in one run. Trees: /usr/include and a
# generated, deterministic ~1 GiB mixed tree (scripts/gen-mixed-tree.py).
# Every figure is the median of --runs runs (default 3) with its range,
# page cache warm for the source. Inside each run the four steps run
# interleaved, and the order rotates from run to run (so no tool always
# follows another's writeback); before every step a `sync` writes back
# what the previous one left dirty, so each starts equal. The 1-minute
# load average is printed at the start and end of each tree (the machine
# is shared). mkvhd fsyncs its image before it renames it into place, so
# mcopy's file gets an fsync too (sync FILE); tar -x is timed without one
# (a sync of its many files would flush the whole file system, others'
# data too; the next step's `sync` takes it outside the timing).
#
#   bash scripts/bench-mkvhd.sh [--build DIR] [--dir WORK] [--runs N]
#                               [--mixed-mib N] [--tree DIR]...
# Prints a Markdown table (docs/PERFORMANCE.md, "Building images").
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build-release
work=${TMPDIR:-/tmp}
runs=3
mixed_mib=1024
trees=()
while (($#)); do
    case $1 in
    --build) build=$2; shift 2 ;;
    --dir) work=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --mixed-mib) mixed_mib=$2; shift 2 ;;
    --tree) trees+=("$2"); shift 2 ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "bench-mkvhd.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for t in mkfs.fat mcopy tar; do
    command -v $t >/dev/null || { echo "bench-mkvhd.sh: $t is needed" >&2; exit 1; }
done
if [[ ! -x $build/mkvhd/mkvhd ]]; then
    echo "building Release in $build" >&2
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVD_BUILD_TESTS=OFF >/dev/null
    cmake --build "$build" -j2 --target mkvhd vhdtool >/dev/null
fi
MKVHD=$build/mkvhd/mkvhd
VHDTOOL=$build/vhdtool/vhdtool
export MTOOLS_SKIP_CHECK=1

W=$(mktemp -d "$work/bench-mkvhd.XXXXXX")
trap 'rm -rf -- "$W"' EXIT
head -c 32 /dev/urandom >"$W/key"

# The deterministic mixed tree (scripts/gen-mixed-tree.py: many small
# files, some large ones, a few symbolic links).
make_mixed() { python3 "$src/scripts/gen-mixed-tree.py" "$1" "$2"; }

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
# Children's user+sys seconds so far (bash's times builtin, second line).
# (times must run in this shell: in $(...) or a pipeline it would see the
# subshell's children only.)
cpu_parse() { sed -n 2p "$W/times" | sed 's/[ms]/ /g' | awk '{print $1 * 60 + $2 + $3 * 60 + $4}'; }
# time_it CMD...: "wall cpu" in seconds (cpu = user + sys of everything CMD
# ran: the load on a shared machine stretches wall time, much less CPU
# time); the command's output discarded.
time_it() {
    local t0 t1 c0 c1
    times >"$W/times"
    c0=$(cpu_parse)
    t0=$(now)
    "$@" >/dev/null 2>&1 || { echo "bench-mkvhd.sh: failed: $*" >&2; exit 1; }
    t1=$(now)
    times >"$W/times"
    c1=$(cpu_parse)
    echo "$(echo "$t1 - $t0" | bc -l) $(echo "$c1 - $c0" | bc -l)"
}

run_mkvhd() { "$MKVHD" -q --on-clash=skip --key-file "$W/key" "$W/img.vhd" "$1"; }
run_mkvhd_tar() { "$MKVHD" -q --on-clash=skip --tar "$W/tree.tar" --key-file "$W/key" "$W/img.vhd"; }
run_mcopy() { # $1 tree, $2 volume KiB
    mkfs.fat -F 32 -C "$W/raw.img" "$2" >/dev/null
    # -D s: skip a name that clashes (as --on-clash=skip); -m keeps mtimes.
    (cd "$1" && mcopy -s -m -D s -i "$W/raw.img" ./* ::/)
    sync "$W/raw.img"
}
run_tarx() { mkdir "$W/x"; tar -C "$W/x" -xf "$W/tree.tar"; }
clean() { rm -rf "$W/x" "$W/raw.img" "$W/img.vhd"; }

bench_tree() { # $1 label, $2 tree
    local label=$1 tree=$2 kib files bytes
    # Warm the cache (GNU tar skips reading when writing to /dev/null).
    tar -C "$tree" -cf - . | cat >/dev/null
    tar -C "$tree" -cf "$W/tree.tar" . 2>/dev/null || true
    files=$(find "$tree" -type f | wc -l)
    bytes=$(du -sb "$tree" | cut -f1)
    clean
    run_mkvhd "$tree" >/dev/null 2>&1
    kib=$(($("$VHDTOOL" info --json "$W/img.vhd" | sed -n 's/.*"volume_bytes": *\([0-9]*\).*/\1/p') / 1024))
    local r i m=() mc=() f=() fc=() x=() xc=() t=() tc=() w c
    local load0 load1
    load0=$(cut -d' ' -f1 /proc/loadavg)
    for ((r = 0; r < runs; r++)); do # interleaved, so a change of load touches all
        for ((i = 0; i < 4; i++)); do
            clean
            sync # what the previous step left dirty is not the next one's cost
            case $(((r + i) % 4)) in
            0) read -r w c < <(time_it run_mkvhd "$tree"); m+=("$w"); mc+=("$c") ;;
            1) read -r w c < <(time_it run_mcopy "$tree" "$kib"); f+=("$w"); fc+=("$c") ;;
            2) read -r w c < <(time_it run_tarx); x+=("$w"); xc+=("$c") ;;
            3) read -r w c < <(time_it run_mkvhd_tar); t+=("$w"); tc+=("$c") ;;
            esac
        done
    done
    load1=$(cut -d' ' -f1 /proc/loadavg)
    med() { printf '%s\n' "$@" | median; }
    # "median [min-max] (median CPU)"
    cell() { # $1 name of the wall array, $2 of the CPU array
        local -n wa=$1 ca=$2
        printf '%.2f [%.2f-%.2f] (%.2f)' "$(med "${wa[@]}")" \
            "$(printf '%s\n' "${wa[@]}" | sort -g | head -1)" \
            "$(printf '%s\n' "${wa[@]}" | sort -g | tail -1)" "$(med "${ca[@]}")"
    }
    local mm ff
    mm=$(med "${m[@]}")
    ff=$(med "${f[@]}")
    printf '| %s | %s files, %s MiB | %s-%s | %s | %s | %.2fx | %s | %s |\n' \
        "$label" "$files" $((bytes >> 20)) "$load0" "$load1" "$(cell m mc)" \
        "$(cell f fc)" "$(echo "$ff / $mm" | bc -l)" "$(cell x xc)" "$(cell t tc)"
    clean
    rm -f "$W/tree.tar"
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, commit $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo ?)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Wall seconds, median of $runs [min-max] (median CPU = user + sys)."
echo
echo "| tree | size | load | mkvhd | mkfs.fat + mcopy -s | mcopy / mkvhd | tar -x | mkvhd --tar |"
echo "|---|---|---|---:|---:|---:|---:|---:|"
bench_tree /usr/include /usr/include
make_mixed "$W/mixed" "$mixed_mib"
bench_tree "mixed ~$mixed_mib MiB" "$W/mixed"
rm -rf "$W/mixed"
for t in "${trees[@]}"; do bench_tree "$t" "$t"; done
echo
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
