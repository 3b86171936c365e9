#!/usr/bin/env bash
# Every crash state of the file-system crash harness (tests/test_crash_fs.c,
# issue 15), from a clean checkout:
#
#   bash scripts/crash-full.sh
#
# Builds test_crash_fs in build-crash/ (Debug: assert live; -DVD_CRASH_FULL=ON
# registers crash_fs_full, label crash-full) and runs that label: 12 seeded
# workloads, about 20,000 crash states (every prefix of each write log, every
# one-write-dropped reordering and random subsets of each flush epoch, and
# every 50th state crashed again during its recovering open). Each must open,
# pass vd_fsck with nothing found (not even lost clusters) and hold only bytes
# written to its files, every fsync'd file byte-exact. scripts/test.sh runs
# the same test in its Debug step. 3 to 4 minutes of CPU on one core (measured:
# 19,967 states in 150 s user + 42 s system; 41 min of wall time on a 2-core
# machine at load 20).
#
# Environment: BUILD_DIR (default: build-crash), VD_CRASH_SEED (first seed).
# Exits non-zero if the build fails or any crash state fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
D=${BUILD_DIR:-build-crash}

bash "$ROOT/scripts/setup.sh" </dev/null
cmake -S "$ROOT" -B "$D" -DCMAKE_BUILD_TYPE=Debug -DVD_WERROR=ON -DVD_CRASH_FULL=ON
cmake --build "$D" -j"$(nproc)" --target test_crash_fs
start=$SECONDS
ctest --test-dir "$D" -L crash-full -V </dev/null
echo "crash-full: passed in $((SECONDS - start)) s"
