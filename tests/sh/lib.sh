# Shared helpers for tests/sh/test_*.sh (sourced). Each test runs in its
# own temporary directory, removed on exit; a failing check prints what
# was expected and exits 1. Exit 77 = skipped (ctest SKIP_RETURN_CODE),
# always with the reason printed.
set -euo pipefail

VD_BUILD=${VD_BUILD:?VD_BUILD must point at the build tree}
VD_SRC=${VD_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
MKVHD=$VD_BUILD/mkvhd/mkvhd
VHDTOOL=$VD_BUILD/vhdtool/vhdtool
VHDFSCK=$VD_BUILD/fsck/vhdfsck
VHDMOUNT=$VD_BUILD/fusemount/vhdmount

T=$(mktemp -d "${TMPDIR:-/tmp}/vdisk-sh.XXXXXX")
_vd_cleanup_hooks=()
_vd_cleanup() {
    local h
    for h in "${_vd_cleanup_hooks[@]}"; do eval "$h" || true; done
    rm -rf -- "$T"
}
trap _vd_cleanup EXIT
at_exit() { _vd_cleanup_hooks+=("$1"); }

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
# vhdmount's state files in this test's own XDG_RUNTIME_DIR, never the
# user's: each mount would otherwise leave one in /run/vhdmount (root)
# for good. Idempotent.
runtime_dir_private() {
    export XDG_RUNTIME_DIR=$T/vhdmount-runtime
    [[ -d $XDG_RUNTIME_DIR ]] || mkdir -m 0700 "$XDG_RUNTIME_DIR"
}
note() { echo "-- $*"; }

# expect_status N CMD...: run CMD (stdout -> $T/out, stderr -> $T/err) and
# check its exit status is N.
expect_status() {
    local want=$1 got=0
    shift
    "$@" >"$T/out" 2>"$T/err" </dev/null || got=$?
    if [[ "$got" != "$want" ]]; then
        echo "--- stdout:" >&2; head -c 4000 "$T/out" >&2 || true
        echo "--- stderr:" >&2; head -c 4000 "$T/err" >&2 || true
        fail "exit $got (expected $want): $*"
    fi
}
# expect_err REGEX: the last expect_status's stderr matches REGEX.
expect_err() { grep -Eq -- "$1" "$T/err" || { cat "$T/err" >&2; fail "stderr lacks /$1/"; }; }
expect_out() { grep -Eq -- "$1" "$T/out" || { cat "$T/out" >&2; fail "stdout lacks /$1/"; }; }
# one_line_err: stderr (ignoring the anchor note) is exactly one line.
one_line_err() {
    local n
    n=$(grep -vc 'freshness across restarts' "$T/err" || true)
    [[ "$n" == 1 ]] || { cat "$T/err" >&2; fail "expected one error line, got $n"; }
}
need() { local b; for b in "$@"; do [[ -x "$b" ]] || command -v "$b" >/dev/null 2>&1 || skip "$b not available"; done; }
# flip_byte FILE OFFSET [MASK]: XOR one byte in place (default mask 0x01),
# so the byte always changes (writing a fixed value would not change a
# byte that already holds it: a flaky tamper test).
flip_byte() {
    local file=$1 off=$2 mask=${3:-1} orig
    orig=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')
    [[ -n "$orig" ]] || fail "flip_byte: $file has no byte at $off"
    # shellcheck disable=SC2059
    printf "$(printf '\\%03o' $((orig ^ mask)))" |
        dd of="$file" bs=1 seek="$off" count=1 conv=notrunc status=none
}
