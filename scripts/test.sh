#!/usr/bin/env bash
# The test command: build with assertions live, run every ctest suite, then
# run the demo program once as a smoke test.
#
#   bash scripts/test.sh [--sanitize]
#
#   --sanitize   also build in build-asan/ with -DVD_SANITIZE=ON
#                (AddressSanitizer + UndefinedBehaviorSanitizer) and run
#                ctest and the smoke test there too.
#
# Environment: BUILD_DIR (default: build-test), BUILD_TYPE (default: Debug,
# so assert() is live). Needs no terminal and no stdin (CI runs it through
# .ci/run). Exits non-zero if any build, test or the smoke test fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() { echo "usage: bash scripts/test.sh [--sanitize]" >&2; }

sanitize=0
for arg in "$@"; do
    case "$arg" in
    --sanitize) sanitize=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage; exit 2 ;;
    esac
done

section() { printf '\n==== %s ====\n' "$*"; }

# Build into $1 with the remaining args passed to cmake; run ctest there and
# the demo once. Returns non-zero if any step failed. (Called under `||`,
# where set -e is off, so every step is checked explicitly.)
run_suite() {
    local dir=$1
    shift
    local type=${BUILD_TYPE:-Debug}
    section "Build $dir ($type)"
    if ! BUILD_DIR=$dir BUILD_TYPE=$type bash "$ROOT/scripts/build.sh" "$@" </dev/null; then
        echo "test: build failed in $dir" >&2
        return 1
    fi

    section "ctest ($dir)"
    # ctest prints its own summary ("100% tests passed, 0 tests failed out
    # of N", or the list of failures); it is kept as is.
    local rc=0
    ctest --test-dir "$dir" --output-on-failure -j2 </dev/null || rc=$?

    section "Smoke test: vdisk-demo ($dir)"
    local work src=0
    work=$(mktemp -d "${TMPDIR:-/tmp}/vdisk-test.XXXXXX") || return 1
    "$dir/examples/vdisk-demo" "$work/smoke.vhd" 8 </dev/null || src=$?
    rm -rf -- "$work"

    if ((rc != 0)); then
        echo "test: ctest failed in $dir (exit $rc)" >&2
    fi
    if ((src != 0)); then
        echo "test: smoke test failed in $dir (exit $src)" >&2
    fi
    ((rc == 0 && src == 0))
}

status=0
run_suite "${BUILD_DIR:-build-test}" || status=1

if ((sanitize)); then
    # Leaks are errors too; abort on the first report so ctest sees it.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    run_suite build-asan -DVD_SANITIZE=ON || status=1
fi

section "Result"
if ((status == 0)); then
    echo "test: all suites passed"
else
    echo "test: FAILED" >&2
fi
exit "$status"
