#!/usr/bin/env bash
# Regenerate the seed corpora in fuzz/corpus/<target>/ (committed; keep
# them under 2 MB in total). The seeds come from the library itself
# (fuzz_seedgen, built from seedgen.c + fz_common.c with any compiler) and,
# for the boot-sector decoder, from mkfs.fat when it is installed.
#
#   fuzz/make-seeds.sh [BUILD_DIR]    default BUILD_DIR: build-seeds (created)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
build=${1:-$src/build-seeds}

if [[ ! -f "$build/CMakeCache.txt" ]]; then
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVD_BUILD_TESTS=OFF >/dev/null
fi
make -C "$build" -j2 fuzz_seedgen >/dev/null

targets=(fuzz_header fuzz_keyslot fuzz_superblock fuzz_bpb fuzz_names fuzz_dirent fuzz_image fuzz_fatvol fuzz_log)
for t in "${targets[@]}"; do
    rm -rf "$here/corpus/$t"
    mkdir -p "$here/corpus/$t"
done
"$build/fuzz/fuzz_seedgen" "$here/corpus"

# Boot sectors as mkfs.fat writes them, for several cluster sizes; each
# seed is the volume size (u64 LE) and the first 512 bytes.
if command -v mkfs.fat >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    for spec in "40:1" "40:2" "300:8" "600:16"; do
        mib=${spec%%:*} spc=${spec##*:}
        truncate -s "${mib}M" "$tmp/vol"
        mkfs.fat --invariant -i 4d4b4653 -F 32 -s "$spc" -n MKFSFAT "$tmp/vol" >/dev/null 2>&1
        bytes=$((mib * 1048576))
        le=""
        for i in 0 1 2 3 4 5 6 7; do le+=$(printf '\\x%02x' $(((bytes >> (8 * i)) & 255))); done
        { printf "$le"; head -c 512 "$tmp/vol"; } >"$here/corpus/fuzz_bpb/mkfs-${mib}m-s${spc}"
        rm -f "$tmp/vol"
    done
fi
du -sh "$here/corpus"
