#!/usr/bin/env bash
# The TPM 2.0 anchor and anchor binding through the tools (issue 18, R4/R7),
# against a software TPM (swtpm) this test starts on its own unix socket
# and stops at the end:
#   - mkvhd --anchor tpm:NVINDEX defines the counter; each sync moves it to
#     the image's epoch / 2^20, one increment (cross-checked with tpm2_nvread);
#   - an older copy of the image is refused (exit 4);
#   - the anchor of another image, TPM or file, is refused as such (exit 5),
#     never as a rollback; vhdfsck says so too (exit 8);
#   - an unreachable TPM (6), a missing index (7), a wrong authorization
#     (8: a foreign counter adopted, or the index redefined with the same
#     public area and another password);
#   - a counter index deleted and defined again starts above its old value;
#   - vhdtool anchor init binds an image made without an anchor, and rebinds
#     one to a new anchor; the old anchor is then refused.
source "$(dirname "$0")/lib.sh"
need swtpm tpm2_getcap tpm2_nvread tpm2_nvdefine tpm2_nvundefine tpm2_nvincrement tpm2_nvreadpublic \
    xxd "$MKVHD" "$VHDTOOL" "$VHDFSCK"
"$VHDTOOL" anchor init --anchor tpm:0x01500020 --tpm-tcti swtpm:path=/nonexistent \
    --key-file /dev/null x.vhd >/dev/null 2>"$T/probe" || true
if grep -q 'built without TPM support' "$T/probe"; then
    skip "tools built without TPM support (libtss2-dev missing)"
fi

cd "$T"
source "$VD_SRC/scripts/swtpm.sh"
up=0
swtpm_start "$T" && up=1
at_exit "kill $SWTPM_PID 2>/dev/null; wait $SWTPM_PID 2>/dev/null"
[[ $up == 1 ]] || fail "swtpm did not start: $(cat "$T/swtpm.log" "$T/getcap.err")"

counter() { tpm2_nvread -C o "$1" 2>/dev/null | xxd -p | tr -d '\n'; }
# The image's epoch in counter steps: a TPM anchor reads its counter times
# 2^20 (VD_ANCHOR_TPM_STEP), and the epoch of an acknowledged sync is a
# multiple of that, so one sync is one increment.
epoch() {
    "$VHDTOOL" info --key-file key "$@" >"$T/info" 2>/dev/null || fail "info $*"
    local e
    e=$(awk '/^epoch:/ {print $2}' "$T/info")
    (( e % 1048576 == 0 )) || fail "epoch $e is not a multiple of the TPM anchor's step"
    printf '%016x' $(( e / 1048576 ))
}

head -c 32 /dev/urandom >key
mkdir src && echo hello >src/a

note "mkvhd --anchor tpm: defines the counter; syncs move it to the epoch"
A=tpm:0x01500020
expect_status 0 "$MKVHD" -q --size 40M --key-file key --anchor $A a.vhd src
tpm2_nvreadpublic 0x01500020 >"$T/pub" 2>&1 || fail "index not defined"
grep -q 'nt=0x1' "$T/pub" || fail "not a counter: $(cat "$T/pub")"
grep -q 'orderly' "$T/pub" && fail "orderly counter"
[[ "$(counter 0x01500020)" == "$(epoch --anchor $A a.vhd)" ]] ||
    fail "counter $(counter 0x01500020) != image epoch $(epoch --anchor $A a.vhd)"
cp a.vhd a-old.vhd
before=$(counter 0x01500020)
expect_status 0 "$VHDTOOL" mkdir -q --key-file key --anchor $A a.vhd /d
after=$(counter 0x01500020)
[[ "$after" != "$before" ]] || fail "the counter did not move ($before)"
(( 16#$after - 16#$before == 1 )) || fail "one sync took $(( 16#$after - 16#$before )) increments"
[[ "$after" == "$(epoch --anchor $A a.vhd)" ]] || fail "counter $after != epoch after a sync"

note "an older copy is a rollback (exit 4)"
expect_status 4 "$VHDTOOL" ls -q --key-file key --anchor $A a-old.vhd
expect_err 'rollback'
one_line_err

note "the TCTI from --tpm-tcti wins over TPM2TOOLS_TCTI"
expect_status 0 env TPM2TOOLS_TCTI=swtpm:path=/nonexistent "$VHDTOOL" ls -q --key-file key \
    --anchor $A --tpm-tcti "swtpm:path=$T/tpm.sock" a.vhd

note "another image's anchor is refused as such (exit 5), TPM and file"
expect_status 0 "$MKVHD" -q --size 40M --key-file key --anchor tpm:0x01500021 b.vhd src
expect_status 5 "$VHDTOOL" ls -q --key-file key --anchor tpm:0x01500021 a.vhd
expect_err 'belongs to another image'
one_line_err
expect_status 5 "$VHDTOOL" ls -q --key-file key --anchor $A b.vhd
expect_err 'belongs to another image'
expect_status 8 "$VHDFSCK" -n --key-file key --anchor $A b.vhd
expect_err 'belongs to another image'
grep -q rollback "$T/err" && fail "reported as a rollback"
expect_status 0 "$MKVHD" -q --size 40M --key-file key --anchor fa c.vhd src
expect_status 0 "$MKVHD" -q --size 40M --key-file key --anchor fd d.vhd src
expect_status 5 "$VHDTOOL" ls -q --key-file key --anchor fa d.vhd
expect_err 'belongs to another image'
expect_status 5 "$VHDTOOL" ls -q --key-file key --anchor fd c.vhd
expect_status 5 "$VHDTOOL" ls -q --key-file key --anchor fa a.vhd
expect_status 0 "$VHDTOOL" ls -q --key-file key --anchor fa c.vhd

note "unreachable TPM (6), missing index (7), malformed index (2)"
expect_status 6 "$VHDTOOL" ls -q --key-file key --anchor $A --tpm-tcti swtpm:path=/nonexistent a.vhd
expect_err 'does not answer'
one_line_err
expect_status 7 "$VHDTOOL" ls -q --key-file key --anchor tpm:0x015000ff a.vhd
expect_err 'does not exist'
one_line_err
expect_status 2 "$VHDTOOL" ls -q --key-file key --anchor tpm:12 a.vhd
expect_err 'not a TPM NV index'

note "wrong authorization (8): a foreign counter, and a redefined index"
tpm2_nvdefine 0x01500030 -C o -s 8 -a "authwrite|authread|nt=counter" -p foreign >/dev/null 2>&1 ||
    fail "tpm2_nvdefine"
expect_status 0 "$MKVHD" -q --size 40M --key-file key e.vhd src
expect_status 8 "$VHDTOOL" anchor init --key-file key --anchor tpm:0x01500030 e.vhd
expect_err 'refused the authorization'
one_line_err
# Same attributes and policy, hence the same TPM name, another password.
tpm2_nvreadpublic 0x01500021 2>/dev/null | awk '/authorization policy/ {print $3}' | xxd -r -p >pol
[[ -s pol ]] || fail "no policy read"
old21=$(counter 0x01500021)
tpm2_nvundefine 0x01500021 -C o >/dev/null 2>&1 || fail "tpm2_nvundefine"
tpm2_nvdefine 0x01500021 -C o -s 8 -a "authwrite|authread|ownerread|no_da|nt=counter" -L pol \
    -p other >/dev/null 2>&1 || fail "tpm2_nvdefine (redefine)"
tpm2_nvincrement 0x01500021 -P other >/dev/null 2>&1 || fail "tpm2_nvincrement"
# A redefined counter never starts below the old one (no rollback that way).
(( 16#$(counter 0x01500021) > 16#$old21 )) ||
    fail "redefined counter $(counter 0x01500021) not above the old $old21"
expect_status 8 "$VHDTOOL" ls -q --key-file key --anchor tpm:0x01500021 b.vhd
expect_err 'refused the authorization'

note "anchor init binds an image without anchor; rebinding refuses the old anchor"
expect_status 0 "$VHDTOOL" anchor init -q --key-file key --anchor tpm:0x01500040 e.vhd
[[ "$(counter 0x01500040)" == "$(epoch --anchor tpm:0x01500040 e.vhd)" ]] || fail "bound epoch"
cp e.vhd e-old.vhd
expect_status 0 "$VHDTOOL" mkdir -q --key-file key --anchor tpm:0x01500040 e.vhd /x
expect_status 4 "$VHDTOOL" ls -q --key-file key --anchor tpm:0x01500040 e-old.vhd
expect_status 0 "$VHDTOOL" anchor init -q --key-file key --anchor ef e.vhd
expect_status 5 "$VHDTOOL" ls -q --key-file key --anchor tpm:0x01500040 e.vhd
expect_status 0 "$VHDTOOL" ls -q --key-file key --anchor ef e.vhd
expect_status 0 "$VHDTOOL" anchor init -q --key-file key --anchor tpm:0x01500040 e.vhd
expect_status 5 "$VHDTOOL" ls -q --key-file key --anchor ef e.vhd
expect_status 0 "$VHDTOOL" ls -q --key-file key --anchor tpm:0x01500040 e.vhd

note "rekey of a TPM-bound image: refused with the TPM, and what the error advises works"
expect_status 1 "$VHDTOOL" rekey -q --key-file key --new-key-file ek --anchor tpm:0x01500040 e.vhd
expect_err 'anchor init --anchor FILE'
expect_status 5 "$VHDTOOL" rekey -q --key-file key --new-key-file ek e.vhd
expect_status 0 "$VHDTOOL" anchor init -q --key-file key --anchor er e.vhd
expect_status 0 "$VHDTOOL" rekey -q --key-file key --new-key-file ek --drop-unlock --anchor er e.vhd
expect_status 0 "$VHDTOOL" anchor init -q --key-file ek --anchor tpm:0x01500041 e.vhd
expect_status 0 "$VHDTOOL" ls -q --key-file ek --anchor tpm:0x01500041 e.vhd
expect_status 3 "$VHDTOOL" ls -q --key-file key --anchor tpm:0x01500041 e.vhd
echo PASS
