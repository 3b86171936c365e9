#!/usr/bin/env bash
# vhdtool resize through the tools (issue 18 part 4): an image made with
# mkvhd --max-size grows in place past a tree level; qemu-img reads the new
# virtual size, vhdfsck is clean, the exported volume is clean for
# fsck.fat -n and the new space holds a file read back byte-exact; the
# too-big error names the largest size possible (the FAT's room) and the
# remedy; shrinking and an image without room are refused with one line;
# an NBD export keeps its size: growing past it is a clear error, within
# it works. A grown image rotates its key (vhdtool rekey) and grows again
# under the new one, its files intact. The crash safety is test_resize's
# and test_rekey's (every crash point).
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
need "$MKVHD" "$VHDTOOL" "$VHDFSCK" qemu-img fsck.fat cmp
cd "$T"
head -c 32 /dev/urandom >key
mkdir src && echo hello >src/a && head -c 300000 /dev/urandom >src/b

note "grow 40M -> 200M (--max-size 256M): qemu-img, vhdfsck, fsck.fat, new space"
expect_status 0 "$MKVHD" -q --size 40M --max-size 256M --key-file key a.vhd src
expect_status 0 "$VHDTOOL" info a.vhd
expect_out 'height 2'
expect_status 0 "$VHDTOOL" resize -q --key-file key a.vhd 200M
expect_status 0 "$VHDTOOL" info a.vhd
expect_out 'volume size: +200.0 MiB'
expect_out 'height 3'
file_bytes=$(stat -c %s a.vhd)
qemu-img info -f vpc a.vhd >"$T/qi" 2>&1 || fail "qemu-img info: $(cat "$T/qi")"
grep -q "virtual size: .*($((file_bytes - 512)) bytes)" "$T/qi" ||
    fail "qemu-img does not show the new size $((file_bytes - 512)): $(cat "$T/qi")"
expect_status 0 "$VHDFSCK" -n -q --key-file key a.vhd
head -c 150M /dev/urandom >big
expect_status 0 "$VHDTOOL" put -q --key-file key a.vhd big /big
expect_status 0 "$VHDTOOL" cat -q --key-file key a.vhd /big
cmp "$T/out" big || fail "the file in the new space differs"
expect_status 0 "$VHDTOOL" cat -q --key-file key a.vhd /b
cmp "$T/out" src/b || fail "a file from before the resize differs"
expect_status 0 "$VHDTOOL" export -q --key-file key a.vhd vol.raw
fsck.fat -n vol.raw >"$T/fsckfat" 2>&1 || fail "fsck.fat -n: $(cat "$T/fsckfat")"
expect_status 0 "$VHDFSCK" -n -q --key-file key a.vhd

note "a grown image rotates its key, then grows again under the new one"
expect_status 0 "$MKVHD" -q --size 40M --max-size 256M --key-file key g.vhd src
expect_status 0 "$VHDTOOL" resize -q --key-file key g.vhd 200M
head -c 60M /dev/urandom >mid
expect_status 0 "$VHDTOOL" put -q --key-file key g.vhd mid /mid
expect_status 0 "$VHDTOOL" rekey -q --key-file key --drop-unlock --new-key-file key2 g.vhd
expect_status 3 "$VHDTOOL" info --key-file key g.vhd
expect_status 0 "$VHDTOOL" resize -q --key-file key2 g.vhd 240M
expect_status 0 "$VHDTOOL" info g.vhd
expect_out 'volume size: +240.0 MiB'
expect_status 0 "$VHDTOOL" cat -q --key-file key2 g.vhd /mid
cmp "$T/out" mid || fail "a file written after the first grow differs after rekey and grow"
expect_status 0 "$VHDTOOL" cat -q --key-file key2 g.vhd /b
cmp "$T/out" src/b || fail "a file from before the resize differs after rekey and grow"
expect_status 0 "$VHDFSCK" -n -q --key-file key2 g.vhd
rm -f mid g.vhd

note "past the FAT's room: the error names the largest size and the remedy"
expect_status 1 "$VHDTOOL" resize -q --key-file key a.vhd 1G
one_line_err
expect_err 'largest size possible is [0-9.]+ MiB \([0-9]+ bytes\)'
expect_err 'mkvhd --size'
limit=$(grep -o '([0-9]* bytes)' "$T/err" | tr -dc 0-9)
(( limit >= 256 * 1048576 && limit < 262 * 1048576 )) || fail "limit $limit for --max-size 256M (at least 256M, the FATs on top)"
expect_status 0 "$VHDTOOL" resize -q --key-file key a.vhd "$limit"
expect_status 0 "$VHDFSCK" -n -q --key-file key a.vhd

note "without --max-size there is (almost) no room; shrinking is refused"
expect_status 0 "$MKVHD" -q --size 40M --key-file key n.vhd src
expect_status 1 "$VHDTOOL" resize -q --key-file key n.vhd 41M
one_line_err
expect_err 'largest size possible is 40.0 MiB'
expect_status 1 "$VHDTOOL" resize -q --key-file key a.vhd 100M
one_line_err
expect_err 'shrinking .* is not supported'
expect_status 2 "$VHDTOOL" resize -q --key-file key a.vhd 12Q

if command -v nbdkit >/dev/null 2>&1; then
    source "$HERE/nbd_lib.sh"
    err=$("$VHDTOOL" info "nbd+unix:///?socket=$T/none.sock" 2>&1 || true)
    if [[ "$err" != *"built without NBD support"* ]]; then
        note "an NBD export keeps its size"
        nbd_start mem memory size=96M
        U=$(nbd_uri mem)
        expect_status 0 "$MKVHD" -q --size 40M --max-size 256M --key-file key "$U" src
        expect_status 1 "$VHDTOOL" resize -q --key-file key "$U" 200M
        one_line_err
        expect_err 'NBD export keeps its size: it holds an image of at most'
        expect_status 0 "$VHDFSCK" -n -q --key-file key "$U"
        expect_status 0 "$VHDTOOL" resize -q --key-file key "$U" 80M
        expect_status 0 "$VHDTOOL" info "$U"
        expect_out 'volume size: +80.0 MiB'
        expect_status 0 "$VHDTOOL" cat -q --key-file key "$U" /b
        cmp "$T/out" src/b || fail "a file from before the NBD resize differs"
        expect_status 0 "$VHDFSCK" -n -q --key-file key "$U"
        nbd_stop mem
    else
        note "skipping the NBD part: tools built without NBD support"
    fi
else
    note "skipping the NBD part: nbdkit not installed"
fi
echo PASS
