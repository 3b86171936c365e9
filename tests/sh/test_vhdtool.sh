#!/bin/bash
# vhdtool end to end: every command, its exit statuses and messages, with
# results checked by diff/cmp against host files, by fsck.fat and mtools on
# an export, and by reading the image header with od (not with vdisk).
. "$(dirname "$0")/lib.sh"
need "$MKVHD" "$VHDTOOL" fsck.fat mcopy
export TZ=UTC MTOOLS_SKIP_CHECK=1
mkdir "$T/w" && cd "$T/w" || exit 1
V=$VHDTOOL

note "help, version, usage errors"
expect_status 0 "$V" --help
expect_out '^Usage: vhdtool COMMAND'
expect_out 'vhdtool keyslot add'
expect_status 0 "$V" --version
expect_out '^vhdtool \(vdisk\) [0-9]+\.[0-9]+\.[0-9]+$'
for c in info ls cat get put rm mkdir mv export keygen "keyslot list" "keyslot add" \
    "keyslot remove" "anchor init"; do
    # shellcheck disable=SC2086
    expect_status 0 "$V" $c --help
    expect_out "^Usage: vhdtool $c"
done
expect_status 2 "$V"
expect_status 2 "$V" frobnicate x.vhd
expect_err "unknown command 'frobnicate'"
expect_err "Try 'vhdtool --help'"
expect_status 2 "$V" ls --bogus x.vhd
expect_err "unknown option '--bogus'"
expect_status 2 "$V" ls -p x.vhd # -p is mkdir's
expect_status 2 "$V" cat x.vhd
expect_status 2 "$V" keyslot
expect_status 2 "$V" keyslot remove --key-file k x.vhd seven

note "an image to work on"
mkdir -p src/d1/d2 src/d3
printf 'hello\n' >src/hello.txt
head -c 200000 /dev/urandom >src/d1/rand.bin
printf 'deep\n' >"src/d1/d2/Ünïcödé façade.txt"
: >src/d3/empty
# A file of distinct text lines, so its blocks can be found in the raw volume.
for i in $(seq 1 3000); do printf 'marker line %06d ..........................\n' "$i"; done >src/marked.txt
touch -d '2019-05-04 12:34:56' src/hello.txt
expect_status 0 "$MKVHD" -q --new-key-file key img.vhd src
K=(-q --key-file key)

note "missing image, image that is not ours, wrong key"
expect_status 1 "$V" info nothere.vhd
expect_err 'nothere.vhd: No such file'
one_line_err
head -c 1M /dev/urandom >junk.vhd
expect_status 4 "$V" info junk.vhd
expect_err 'junk.vhd: .*not a vdisk image'
one_line_err
cp img.vhd trunc.vhd && truncate -s 1M trunc.vhd
expect_status 4 "$V" info trunc.vhd
one_line_err
expect_status 4 "$V" ls "${K[@]}" trunc.vhd
one_line_err
expect_status 1 "$V" ls -q --passphrase-file nothere.pw img.vhd
expect_err 'nothere.pw: No such file'
one_line_err
printf 'not it\n' >wrong.pw
expect_status 3 "$V" ls -q --passphrase-file wrong.pw img.vhd
one_line_err
head -c 32 /dev/urandom >key2
expect_status 3 "$V" ls -q --key-file key2 img.vhd
expect_err 'img.vhd: wrong key'
one_line_err

note "info without and with a key"
expect_status 0 "$V" info img.vhd
expect_out '^format version: +6$'
expect_out '^cipher: +AES-256-GCM$'
expect_out '^key slot 0: +keyfile$'
! grep -q verified "$T/out" || fail "info without a key claims a verified root"
expect_status 0 "$V" info "${K[@]}" img.vhd
expect_out '^root: +verified$'
expect_out "^files: +$(find src -type f | wc -l)$"
expect_out "^directories: +$(find src -mindepth 1 -type d | wc -l)$"
expect_status 0 "$V" info --json "${K[@]}" img.vhd
expect_out '^\{"image": "img.vhd", "format_version": 6, '
expect_out '"key_slots": \[\{"slot": 0, "type": "keyfile"\}\]'
# data_start as the header stores it (docs/FORMAT.md §4, u64 LE at 104).
ds=$(od -An -t u8 -j 104 -N 8 img.vhd | tr -d ' ')
expect_out "\"data_start\": $ds,"
# The log's size as the header stores it (u32 LE at 176, format 6).
lb=$(od -An -t u4 -j 176 -N 4 img.vhd | tr -d ' ')
expect_out "\"log_blocks\": $lb,"
if command -v python3 >/dev/null; then
    python3 -m json.tool <"$T/out" >/dev/null || fail "info --json is not JSON"
fi

note "ls, cat"
expect_status 0 "$V" ls "${K[@]}" img.vhd
[[ "$(cat "$T/out")" == "$(printf 'd1\nd3\nhello.txt\nmarked.txt')" ]] || fail "ls: $(cat "$T/out")"
expect_status 0 "$V" ls -l "${K[@]}" img.vhd /hello.txt
expect_out '^- +6 2019-05-04 12:34:56 /hello.txt$'
expect_status 0 "$V" ls -R "${K[@]}" img.vhd /d1
expect_out '^/d1/d2:$'
expect_out '^Ünïcödé façade.txt$'
expect_status 0 "$V" cat "${K[@]}" img.vhd /d1/rand.bin
cmp "$T/out" src/d1/rand.bin || fail "cat differs"
expect_status 1 "$V" cat "${K[@]}" img.vhd /nope
expect_err 'img.vhd: /nope: no such file'
one_line_err

note "get and put round trips"
expect_status 0 "$V" get "${K[@]}" img.vhd /d1 got1
diff -r src/d1 got1 || fail "get /d1 differs"
expect_status 0 "$V" get "${K[@]}" img.vhd / gotall
diff -r src gotall || fail "get / differs"
[[ "$(stat -c %Y gotall/hello.txt)" == "$(date -d '2019-05-04 12:34:56' +%s)" ]] ||
    fail "get did not keep the mtime"
mkdir extra && printf 'one\n' >extra/one && head -c 70000 /dev/urandom >extra/two
touch -d '2020-01-02 03:04:06' extra/one
expect_status 0 "$V" put "${K[@]}" img.vhd extra /d3
expect_status 0 "$V" get "${K[@]}" img.vhd /d3/extra back
diff -r extra back || fail "put/get of a directory differs"
[[ "$(stat -c %Y back/one)" == "$(stat -c %Y extra/one)" ]] || fail "put did not keep the mtime"
printf 'replaced\n' >hello2
expect_status 0 "$V" put "${K[@]}" img.vhd hello2 /hello.txt
expect_status 0 "$V" cat "${K[@]}" img.vhd /hello.txt
[[ "$(cat "$T/out")" == replaced ]] || fail "put did not replace the file"
cp hello2 src/hello.txt
mkdir -p src/d3/extra && cp -p extra/* src/d3/extra/

note "a read-only image file opens for reading"
cp img.vhd ro.vhd && chmod 444 ro.vhd
expect_status 0 "$V" cat "${K[@]}" ro.vhd /d3/empty
if [[ $(id -u) != 0 ]]; then # root writes to mode 444 files anyway
    expect_status 1 "$V" mkdir "${K[@]}" ro.vhd /x
    expect_err 'ro.vhd: Permission denied'
    one_line_err
fi

note "put skips or refuses what FAT32 cannot hold; links are copied as links"
mkdir spx && printf 'y\n' >spx/y && ln -s y spx/link && mkfifo spx/fifo
expect_status 1 "$V" put --refuse-special "${K[@]}" img.vhd spx /spx
expect_err '^vhdtool: spx/fifo: fifo \(refused'
expect_status 0 "$V" put "${K[@]}" img.vhd spx /spx
expect_err '^vhdtool: spx/fifo: skipped: fifo$'
expect_status 0 "$V" ls -l "${K[@]}" img.vhd /spx
grep -q '^l .* link -> y$' "$T/out" || { cat "$T/out"; fail "put did not copy the link as a link"; }
[[ "$(grep -c . "$T/out")" == 2 ]] || fail "put listing: $(cat "$T/out")"
expect_status 0 "$V" rm -r "${K[@]}" img.vhd /spx

note "mkdir, mv, rm"
expect_status 0 "$V" mkdir -p "${K[@]}" img.vhd /a/b/c
expect_status 0 "$V" mkdir -p "${K[@]}" img.vhd /a/b
expect_status 1 "$V" mkdir "${K[@]}" img.vhd /a/b
expect_err '/a/b: file exists'
expect_status 0 "$V" mv "${K[@]}" img.vhd /d1/rand.bin /a/b
expect_status 0 "$V" mv "${K[@]}" img.vhd /d3/extra /a/renamed
expect_status 1 "$V" rm "${K[@]}" img.vhd /a
expect_err 'is a directory'
expect_status 1 "$V" rm "${K[@]}" img.vhd /a/b/c
expect_status 0 "$V" rm -r "${K[@]}" img.vhd /a/b/c
expect_status 0 "$V" ls "${K[@]}" img.vhd /a/b
expect_status 0 "$V" rm "${K[@]}" img.vhd /hello.txt
expect_status 1 "$V" rm "${K[@]}" img.vhd /hello.txt
expect_err 'no such file'
mkdir -p want/a/b
mv src/d1/rand.bin want/a/b/ && mv src/d3/extra want/a/renamed && rm src/hello.txt
cp -rp src/. want/

note "the edited volume, read by fsck.fat and mtools"
expect_status 0 "$V" export "${K[@]}" img.vhd raw.img
expect_status 0 fsck.fat -n raw.img
mkdir viamtools
mcopy -s -m -i raw.img ::/ viamtools/
diff -r want viamtools || fail "volume after edits differs from the expected tree"
expect_status 1 "$V" export "${K[@]}" img.vhd raw.img
expect_err 'raw.img: exists'
expect_status 0 "$V" export --force "${K[@]}" img.vhd raw.img
! compgen -G "raw.img.tmp.*" >/dev/null || fail "export left a temporary"

note "full volume, names FAT cannot store"
truncate -s 40M huge
expect_status 1 "$V" put "${K[@]}" img.vhd huge /huge
expect_err 'huge: .*(no space|full)'
one_line_err
expect_status 1 "$V" cat "${K[@]}" img.vhd /huge # no partial copy left
printf 'x\n' >'bad:name'
expect_status 1 "$V" put "${K[@]}" img.vhd 'bad:name' /
expect_err 'bad:name: name'
one_line_err

note "tampering: exit 4 naming the file and the block"
off=$(grep -obUa 'marker line 001500' raw.img | head -1 | cut -d: -f1)
[[ -n "$off" ]] || fail "marker not found in the export"
lbn=$((off / 4096))
cp img.vhd bad.vhd
flip_byte bad.vhd $(((ds + lbn) * 4096 + 7)) 0xff
expect_status 4 "$V" cat "${K[@]}" bad.vhd /marked.txt
expect_err "^vhdtool: bad.vhd: /marked.txt: authentication failed .* at block $lbn$"
one_line_err
expect_status 4 "$V" get "${K[@]}" bad.vhd /marked.txt m.txt
expect_err "/marked.txt: authentication failed .* at block $lbn$"
[[ ! -e m.txt ]] || fail "get left a partial copy of a tampered file"
expect_status 0 "$V" cat "${K[@]}" bad.vhd /d3/empty # the rest still reads

note "two writers: a held lock makes a writer fail"
need flock
flock --no-fork -x img.vhd sleep 60 &
holder=$!
at_exit "kill $holder 2>/dev/null"
until ! flock -n img.vhd true; do :; done # the holder has the lock
expect_status 1 "$V" put "${K[@]}" img.vhd hello2 /h2
expect_err 'another program'
one_line_err
expect_status 0 "$V" info img.vhd # the public header needs no lock
expect_status 0 "$V" keyslot list img.vhd
kill "$holder"
wait "$holder" 2>/dev/null || true

note "keyslots: add, list, open, remove, last slot refused"
printf 'pass phrase\n' >pw
expect_status 0 "$V" keyslot add "${K[@]}" --new-passphrase-file pw img.vhd
expect_status 0 "$V" keyslot add -q --passphrase-file pw --new-key-file key3 img.vhd
[[ "$(stat -c %a key3)" == 600 ]] || fail "new key file mode"
expect_status 0 "$V" keygen --secret id.sec --public id.pub
grep -Eqx '[0-9a-f]{64}' id.pub || fail "public key is not 64 hex digits"
[[ "$(stat -c %a id.sec) $(stat -c %s id.sec)" == "600 32" ]] || fail "secret key file"
expect_status 1 "$V" keygen --secret id.sec --public other.pub
expect_err 'id.sec: exists'
[[ ! -e other.pub ]] || fail "keygen wrote half a pair"
expect_status 0 "$V" keyslot add -q --key-file key3 --seal-to id.pub img.vhd
expect_status 0 "$V" keyslot list img.vhd
expect_out '^0 keyfile$'
expect_out '^1 passphrase argon2id'
expect_out '^2 keyfile$'
expect_out "^3 sealed $(cat id.pub)$"
expect_status 0 "$V" ls -q --identity id.sec img.vhd
expect_status 1 "$V" keyslot add -q --key-file key --new-key-file key3 img.vhd
expect_err 'key3: exists'
expect_status 2 "$V" keyslot add -q --key-file key img.vhd
for s in 0 1 2; do expect_status 0 "$V" keyslot remove -q --identity id.sec img.vhd $s; done
expect_status 3 "$V" ls "${K[@]}" img.vhd
expect_status 1 "$V" keyslot remove -q --identity id.sec img.vhd 3
expect_err 'refusing to remove the last key slot'
one_line_err
expect_status 1 "$V" keyslot remove -q --identity id.sec img.vhd 5
expect_err 'slot 5: empty'
expect_status 0 "$V" ls -q --identity id.sec img.vhd

note "anchor init, then a rollback is caught"
expect_status 0 "$MKVHD" -q --key-file key an.vhd src
expect_status 2 "$V" anchor init "${K[@]}" an.vhd
expect_status 0 "$V" anchor init --anchor an.anc "${K[@]}" an.vhd
cp an.vhd an-old.vhd
expect_status 0 "$V" mkdir --anchor an.anc "${K[@]}" an.vhd /new
cp an-old.vhd an.vhd
expect_status 4 "$V" ls --anchor an.anc "${K[@]}" an.vhd
expect_err 'rollback|older'
one_line_err

note "man page renders"
if command -v groff >/dev/null; then
    groff -man -Tutf8 -ww -z "$VD_SRC/docs/man/vhdtool.1" 2>man.err
    [[ ! -s man.err ]] || { cat man.err; fail "vhdtool.1 has roff warnings"; }
elif command -v man >/dev/null; then
    man -l "$VD_SRC/docs/man/vhdtool.1" >/dev/null
else
    note "no groff or man: man page not rendered"
fi
echo PASS
