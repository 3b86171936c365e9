#!/usr/bin/env bash
# The TPM anchor against the file anchor (docs/PERFORMANCE.md, "The TPM
# anchor"): starts a software TPM (swtpm) of its own on a Unix socket,
# then runs, with the Release vhdbench:
#
#   1. one-step anchor advances, TPM and file:
#        vhdbench --anchor-cost N --anchor-tpm NVINDEX
#   2. the full+anchor mode with the file anchor (advanced at every
#      commit), then with the TPM anchor (advanced at explicit syncs):
#        vhdbench --quick --reps R --no-scale --modes full,full+anchor
#        vhdbench --quick --reps R --no-scale --modes full+anchor --anchor-tpm NVINDEX
#
#   bash scripts/bench-anchor.sh [--build DIR] [--dir WORK] [--reps R] [--advances N]
#
# DIR holds bench/vhdbench (default build-release, built if missing);
# WORK is where vhdbench's file backend and swtpm's state go (default: a
# new directory under /var/tmp, removed at the end). Needs swtpm and
# tpm2-tools (scripts/setup.sh installs both). Prints vhdbench's tables
# and the load before and after; asserts nothing.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build-release
work=""
reps=3
advances=500
while (($#)); do
    case $1 in
    --build) build=$2; shift 2 ;;
    --dir) work=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --advances) advances=$2; shift 2 ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "bench-anchor.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for t in swtpm tpm2_getcap; do
    command -v "$t" >/dev/null || { echo "bench-anchor.sh: $t not found (scripts/setup.sh installs it)" >&2; exit 2; }
done
bench=$build/bench/vhdbench
if [[ ! -x $bench ]]; then
    echo "building Release in $build" >&2
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DVD_BUILD_TESTS=OFF >/dev/null
    cmake --build "$build" -j2 >/dev/null
fi

d=$(mktemp -d "${work:-/var/tmp}/bench-anchor.XXXXXX")
cleanup() {
    [[ -n ${SWTPM_PID:-} ]] && { kill "$SWTPM_PID" 2>/dev/null || true; wait "$SWTPM_PID" 2>/dev/null || true; }
    rm -rf -- "$d"
}
trap cleanup EXIT
mkdir "$d/files"
source "$src/scripts/swtpm.sh"
swtpm_start "$d" || { echo "bench-anchor.sh: swtpm did not answer (log: $(tail -n 3 "$d/swtpm.log"))" >&2; exit 1; }

echo "bench-anchor.sh: $(date -u '+%F %T UTC'), load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, swtpm $(swtpm --version 2>&1 | head -n 1)"
echo "== one-step advances"
"$bench" --anchor-cost "$advances" --anchor-tpm 0x01500800 --dir "$d/files"
echo "== full and full+anchor, file anchor at every commit (load $(cut -d' ' -f1 /proc/loadavg))"
"$bench" --quick --reps "$reps" --no-scale --modes full,full+anchor --dir "$d/files" 2>/dev/null
echo "== full+anchor, TPM anchor at explicit syncs (load $(cut -d' ' -f1 /proc/loadavg))"
"$bench" --quick --reps "$reps" --no-scale --modes full+anchor --anchor-tpm 0x01500900 \
    --dir "$d/files" 2>/dev/null
echo "bench-anchor.sh: done $(date -u '+%T UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
