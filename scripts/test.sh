#!/usr/bin/env bash
# The test command (CI runs it through .ci/run):
#
#   bash scripts/test.sh [--quick]
#
# 1. Debug build (assertions live, -Werror) in build-test/: every ctest
#    suite — the cmocka suites, the tool tests (tests/sh), the fsck case
#    directories, the FUSE mount tests (skipped with a printed reason where
#    /dev/fuse is unusable), a short run of every fuzzer (clang), the
#    install/pkg-config and nm checks, every state of the file-system
#    crash harness (crash_fs_full) — then the old demo program once.
# 2. AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/:
#    every suite again (the tamper sweep thinned by VD_TAMPER_LIGHT=1, the
#    crash harnesses' states by VD_CRASH_STRIDE=2, vhdmount's kill -9
#    rounds by VD_CRASH_ROUNDS=10 of 20; the fuzzers and the install
#    check not repeated).
# 3. ThreadSanitizer build in build-tsan/: the multithreaded suites
#    (threads on one volume, threads on one image handle and the file
#    host's job pool, spilled data's writes in flight, the FUSE mount
#    and its write gate; 10 kill -9 rounds).
#
#   --quick   step 1 only (for a fast local check)
#
# Environment: BUILD_DIR (default: build-test), BUILD_TYPE (default: Debug).
# Needs no terminal and no stdin. Exits non-zero if any build, test or the
# smoke test fails.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() { echo "usage: bash scripts/test.sh [--quick]" >&2; }

quick=0
for arg in "$@"; do
    case "$arg" in
    --quick) quick=1 ;;
    --sanitize) ;; # the sanitizers run by default now; kept for old callers
    -h | --help) usage; exit 0 ;;
    *) usage; exit 2 ;;
    esac
done

section() { printf '\n==== %s ====\n' "$*"; }
t_start=$SECONDS
elapsed() { printf '(%d s so far)\n' $((SECONDS - t_start)); }

# build DIR [CMAKE ARGS...]: configure and build; non-zero on failure.
build() {
    local dir=$1
    shift
    local type=${BUILD_TYPE:-Debug}
    section "Build $dir ($type $*)"
    BUILD_DIR=$dir BUILD_TYPE=$type bash "$ROOT/scripts/build.sh" "$@" </dev/null
}

# run_ctest DIR [CTEST ARGS...]: ctest prints its own summary ("100% tests
# passed...", or the list of failures and why each skipped test skipped).
run_ctest() {
    local dir=$1
    shift
    section "ctest $dir $*"
    ctest --test-dir "$dir" --output-on-failure -j2 "$@" </dev/null
}

smoke() {
    local dir=$1 work rc=0
    section "Smoke test: vdisk-demo ($dir)"
    work=$(mktemp -d "${TMPDIR:-/tmp}/vdisk-test.XXXXXX") || return 1
    "$dir/examples/vdisk-demo" "$work/smoke.vhd" 8 </dev/null || rc=$?
    rm -rf -- "$work"
    return "$rc"
}

failed=()
step() { # step NAME CMD...: run, record a failure, go on
    local name=$1
    shift
    if ! "$@"; then
        echo "test: FAILED: $name" >&2
        failed+=("$name")
    fi
    elapsed
}

D=${BUILD_DIR:-build-test}
# The Debug build also registers crash_fs_full (every crash state of the
# file-system crash harness, a few minutes); the sanitizer builds run only
# its sample (test_crash_fs).
if build "$D" -DVD_CRASH_FULL=ON; then
    step "ctest ($D)" run_ctest "$D"
    step "smoke ($D)" smoke "$D"
else
    failed+=("build $D")
fi

if ((!quick)); then
    # Leaks are errors; abort on the first report so ctest sees it.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    if build build-asan -DVD_SANITIZE=ON; then
        step "ctest (ASan+UBSan)" env VD_TAMPER_LIGHT=1 VD_CRASH_STRIDE=2 VD_CRASH_ROUNDS=10 \
            ctest --test-dir build-asan --output-on-failure -j2 \
            -E '^sh_(fuzz_short|install|nm|vhdbench)$' </dev/null
        step "smoke (ASan+UBSan)" smoke build-asan
    else
        failed+=("build build-asan")
    fi

    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
    if build build-tsan -DVD_TSAN=ON; then
        # test_image: only its threaded cases, test_f* (the file host's
        # job pool, four threads on one handle); its single-threaded sweeps
        # took 250 s under TSan and run in the two builds above.
        step "ctest (TSan)" env VD_IMAGE_FILTER='test_f*' VD_CRASH_ROUNDS=10 \
            ctest --test-dir build-tsan --output-on-failure -j2 \
            -R '^(test_fs_threads|test_parallel|test_read_overlap|test_host|test_image|test_spill|test_wgate|sh_vhdmount.*)$' </dev/null
    else
        failed+=("build build-tsan")
    fi
fi

section "Result ($((SECONDS - t_start)) s)"
if ((${#failed[@]} == 0)); then
    echo "test: all suites passed"
else
    printf 'test: FAILED: %s\n' "${failed[@]}" >&2
    exit 1
fi
