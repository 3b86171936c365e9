#!/usr/bin/env bash
# A short run of every libFuzzer target (fuzz/), after replaying every
# regression input (fuzz/regressions/<target>/): any crash, sanitizer
# report, failed FZ_CHECK, timeout or leak fails the test.
#
# Needs clang (Debian's, with libFuzzer); skipped with the reason without.
# Uses the fuzz build tree $VD_FUZZ_BUILD, default: the tree under test if
# it is a fuzz build, else $VD_SRC/build-fuzz, configured here
# (CC=clang -DVD_FUZZ=ON) when missing and brought up to date.
#
# FUZZ_SECONDS (default 10) is the time per target, so the suite stays
# short; scripts/fuzz.sh runs the targets for 60 s and more each (the
# issue's "about 60 s" and long runs) and keeps a growing corpus.
# FUZZ_TARGETS (default: all) limits the run to some targets.
source "$(dirname "$0")/lib.sh"

secs=${FUZZ_SECONDS:-10}
[[ "$secs" =~ ^[0-9]+$ ]] || fail "FUZZ_SECONDS must be a number of seconds"
command -v clang >/dev/null 2>&1 || skip "clang not installed (libFuzzer targets need it)"

if grep -q '^VD_FUZZ:BOOL=ON' "$VD_BUILD/CMakeCache.txt" 2>/dev/null; then
    FB=${VD_FUZZ_BUILD:-$VD_BUILD}
else
    FB=${VD_FUZZ_BUILD:-$VD_SRC/build-fuzz}
fi
if [[ ! -f "$FB/CMakeCache.txt" ]]; then
    note "configuring the fuzz build in $FB"
    expect_status 0 env CC=clang cmake -S "$VD_SRC" -B "$FB" -DVD_FUZZ=ON \
        -DVD_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
grep -q '^VD_FUZZ:BOOL=ON' "$FB/CMakeCache.txt" || fail "$FB is not a fuzz build (VD_FUZZ off)"
grep -Eq '^CMAKE_C_COMPILER:[A-Z]+=.*clang' "$FB/CMakeCache.txt" || fail "$FB is not built with clang"
expect_status 0 make -C "$FB" -j2 fuzz

targets=()
for src in "$VD_SRC"/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    if [[ -n "${FUZZ_TARGETS:-}" ]] && [[ " $FUZZ_TARGETS " != *" $t "* ]]; then continue; fi
    targets+=("$t")
done
(( ${#targets[@]} > 0 )) || fail "no fuzz targets selected"

# Crash inputs are kept where a developer can find them after this test's
# temporary directory is gone.
keep=$FB/fuzz-artifacts
mkdir -p "$keep"

# libFuzzer's own failure modes: crash, sanitizer, timeout (per input),
# out-of-memory, leak. -error_exitcode makes each one a nonzero exit.
opts=(-timeout=60 -rss_limit_mb=3072 -error_exitcode=77 -timeout_exitcode=78
      -print_final_stats=1)

total_runs=0
for t in "${targets[@]}"; do
    bin=$FB/fuzz/$t
    [[ -x "$bin" ]] || fail "$bin was not built"
    seeds=$VD_SRC/fuzz/corpus/$t
    [[ -d "$seeds" ]] && [[ -n "$(ls -A "$seeds")" ]] || fail "no seed corpus in $seeds"

    # 1. Regressions: each input once.
    regs=$VD_SRC/fuzz/regressions/$t
    if [[ -d "$regs" ]] && [[ -n "$(ls -A "$regs")" ]]; then
        if ! "$bin" "${opts[@]}" "$regs"/* >"$T/$t.replay" 2>&1; then
            tail -40 "$T/$t.replay" >&2
            fail "$t: a regression input fails again (fuzz/regressions/$t)"
        fi
        note "$t: $(ls "$regs" | wc -l) regression inputs pass"
    fi

    # 2. A short run from the seeds (new inputs go to a scratch corpus).
    mkdir -p "$T/corpus/$t"
    rc=0
    "$bin" "${opts[@]}" -max_total_time="$secs" -artifact_prefix="$keep/$t-" \
        "$T/corpus/$t" "$seeds" >"$T/$t.log" 2>&1 || rc=$?
    if (( rc != 0 )); then
        grep -E 'ERROR|SUMMARY|check failed|runtime error|Test unit written' "$T/$t.log" >&2 || true
        tail -30 "$T/$t.log" >&2
        fail "$t: exit $rc after fuzzing (input kept under $keep/; replay: $bin FILE)"
    fi
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$T/$t.log" | tail -1)
    [[ "$runs" =~ ^[0-9]+$ ]] && (( runs > 0 )) || { tail -20 "$T/$t.log" >&2; fail "$t ran no inputs"; }
    cov=$(grep -Eo 'cov: [0-9]+' "$T/$t.log" | tail -1)
    note "$t: $runs inputs in ${secs}s, $cov"
    total_runs=$((total_runs + runs))
done
note "${#targets[@]} targets, $total_runs inputs, no crash"
