#!/bin/bash
# vhdtool rekey end to end (docs/SECURITY.md R8): after a rotation the old
# key file and a dropped slot's passphrase are refused (exit 3), the kept
# and new secrets open the same tree (sha256 of every file before and
# after), vhdfsck is clean, and with a file anchor a copy of the image taken
# before the rotation is refused (exit 4, rollback).
. "$(dirname "$0")/lib.sh"
need "$MKVHD" "$VHDTOOL" "$VHDFSCK" sha256sum
export TZ=UTC
mkdir "$T/w" && cd "$T/w" || exit 1
V=$VHDTOOL

# sha256 of every file of the tree at $1 (paths relative, sorted).
tree_sum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum); }

note "an image with files, a key file, a passphrase slot and a file anchor"
mkdir -p src/d1/d2
head -c 3000000 /dev/urandom >src/d1/big.bin
printf 'hello\n' >src/hello.txt
for i in $(seq 1 200); do printf 'line %d\n' "$i" >"src/d1/d2/f$i.txt"; done
expect_status 0 "$MKVHD" -q --new-key-file key1 img.vhd src
printf 'correct horse battery staple\n' >pw
expect_status 0 "$V" keyslot add -q --key-file key1 --new-passphrase-file pw img.vhd
expect_status 0 "$V" anchor init -q --anchor an --key-file key1 img.vhd
expect_status 0 "$V" get -q --anchor an --key-file key1 img.vhd / before
want=$(tree_sum before)
cp img.vhd pre.vhd # a copy from before the rotation

note "usage errors, a wrong key, a TPM anchor"
expect_status 2 "$V" rekey -q --key-file key1 --drop-unlock img.vhd
expect_err 'leaves no key slot'
expect_status 2 "$V" rekey -q --key-file key1 --new-key-file a --seal-to b img.vhd
head -c 32 /dev/urandom >wrong
expect_status 3 "$V" rekey -q --anchor an --key-file wrong --new-key-file k.unused img.vhd
one_line_err
[[ -e k.unused ]] && fail "a failed rekey left its new key file behind"
expect_status 1 "$V" rekey -q --anchor tpm:0x01500020 --key-file key1 img.vhd
expect_err 'TPM anchor is not supported'
note "a bound image without its anchor is refused, not unbound"
expect_status 5 "$V" rekey -q --key-file key1 img.vhd
expect_err 'give it with --anchor'
expect_status 0 "$V" ls -q --anchor an --key-file key1 img.vhd /

note "rekey: drop key1 and the passphrase, add a new key file"
expect_status 0 "$V" rekey --anchor an --key-file key1 --drop-unlock --new-key-file key2 img.vhd
expect_out 'new master key; 1 key slot'
expect_out 're-encrypted [0-9]+ blocks'
grep -q 're-encrypting' "$T/err" && fail "progress shown on a pipe"
[[ -f key2 ]] || fail "no new key file"

note "the old key file and the dropped passphrase are refused (exit 3)"
expect_status 3 "$V" ls -q --anchor an --key-file key1 img.vhd /
expect_err 'wrong key'
one_line_err
expect_status 3 "$V" ls -q --anchor an --passphrase-file pw img.vhd /
expect_err 'wrong key'
expect_status 0 "$V" keyslot list img.vhd
[[ $(wc -l <"$T/out") == 1 ]] || { cat "$T/out"; fail "expected one key slot"; }
expect_out '^0 keyfile'

note "same tree, vhdfsck clean"
expect_status 0 "$V" get -q --anchor an --key-file key2 img.vhd / after
[[ "$(tree_sum after)" == "$want" ]] || fail "the tree changed across the rotation"
expect_status 0 "$VHDFSCK" -n -q --anchor an --key-file key2 img.vhd
expect_status 0 "$V" put -q --anchor an --key-file key2 img.vhd src/hello.txt /new.txt
expect_status 0 "$V" cat -q --anchor an --key-file key2 img.vhd /new.txt
cmp -s "$T/out" src/hello.txt || fail "a file written after the rotation reads back wrong"

note "the copy from before the rotation: a rollback for its old secrets"
expect_status 4 "$V" ls -q --anchor an --key-file key1 pre.vhd /
expect_err 'rollback'
expect_status 4 "$V" ls -q --anchor an --passphrase-file pw pre.vhd /
expect_status 3 "$V" ls -q --anchor an --key-file key2 pre.vhd /

note "rekey again keeping the key file and adding the passphrase back"
expect_status 0 "$V" rekey -q --anchor an --key-file key2 --new-passphrase-file pw img.vhd
expect_status 0 "$V" keyslot list img.vhd
expect_out '^0 keyfile'
expect_out '^1 passphrase'
expect_status 0 "$V" get -q --anchor an --passphrase-file pw img.vhd / again
rm -f again/new.txt
[[ "$(tree_sum again)" == "$want" ]] || fail "the tree changed across the second rotation"
expect_status 0 "$VHDFSCK" -n -q --anchor an --key-file key2 img.vhd
echo "PASS"
