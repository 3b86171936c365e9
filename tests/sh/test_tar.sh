#!/bin/bash
# mkvhd --tar and vhdtool export --tar: a tree goes through GNU tar ->
# mkvhd --tar -> vhdtool export --tar - -> GNU tar -x and comes back with
# the same names, contents, link targets and mtimes (to FAT's 2 s), checked
# against a manifest of the original made with find/stat/md5sum/readlink —
# not with vdisk. Also: compressed archives, GNU/pax/ustar headers, hard
# links becoming copies, devices and fifos under --skip-special and
# --refuse-special, names made safe as bsdtar does, the spool in $TMPDIR.
. "$(dirname "$0")/lib.sh"
need "$MKVHD" "$VHDTOOL" "$VHDFSCK" tar md5sum fsck.fat
export TZ=UTC LC_ALL=C.UTF-8
mkdir "$T/w" && cd "$T/w" || exit 1
mkdir spool && export TMPDIR=$T/w/spool
head -c 32 /dev/urandom >key

no_leftovers() {
    [[ ! -e "$1" ]] || fail "$1 exists after a failed build"
    ! compgen -G "$1.tmp.*" >/dev/null || fail "temporary left: $(compgen -G "$1.tmp.*")"
}
# manifest DIR: one line per entry below DIR, sorted: type, path, and for
# files the MD5 and the mtime rounded down to FAT's 2 s, for directories
# the mtime so rounded, for links the target.
manifest() {
    (cd "$1" && find . -mindepth 1 -printf '%y %P\n' | LC_ALL=C sort | while read -r y p; do
        case $y in
        f) echo "f $p $(md5sum <"$p" | cut -c1-32) $(($(stat -c %Y "$p") / 2 * 2))" ;;
        d) echo "d $p $(($(stat -c %Y "$p") / 2 * 2))" ;;
        l) echo "l $p -> $(readlink "$p")" ;;
        *) echo "? $p" ;;
        esac
    done)
}
# roundtrip ARCHIVE_CMD...: ARCHIVE on stdin of mkvhd --tar -, exported
# with --tar - and extracted into a fresh directory "out"; prints nothing.
roundtrip() {
    rm -rf out rt.vhd && mkdir out
    "$@" | "$MKVHD" -q --tar - --key-file key rt.vhd 2>rt.err ||
        { cat rt.err; fail "mkvhd --tar - of '$*'"; }
    "$VHDTOOL" export -q --tar --key-file key rt.vhd - | tar -C out -xf - ||
        fail "export --tar - | tar -x"
}

note "a tree: nested directories, empty ones, odd names, a long path, a hard link, links"
mkdir -p src/a/b/c src/empty "src/with space" src/deep
printf 'hello\n' >src/hello.txt
: >src/empty.txt
head -c $((2 << 20)) /dev/urandom >src/a/random.bin
head -c 70000 /dev/urandom >src/a/b/c/odd.bin
printf 'accents\n' >"src/with space/Ünïcödé façade.txt"
long=$(printf 'segment-%.0s' {1..12}) # 96 characters a component
mkdir -p "src/deep/$long/$long"
printf 'long\n' >"src/deep/$long/$long/$long.txt"
ln src/a/random.bin src/a/hardlink.bin
ln -s hello.txt src/rel-link                 # relative
ln -s /a/b/c/odd.bin src/a/abs-link          # absolute (the volume's root)
ln -s a/b src/dir-link                       # to a directory
ln -s no/such/file "src/with space/dangling" # dangling
ln -s ../../hello.txt src/a/b/up-link        # '..' in a target is fine
ln -P src/rel-link src/hard-to-link          # a hard link to a link: a link again
touch -d '2019-05-04 12:34:57' src/hello.txt # odd second: FAT keeps 12:34:56
touch -d '2001-02-03 04:05:06' src/a/b/c/odd.bin
for d in src/a/b/c src/a/b src/a src/empty "src/with space" src/deep; do
    touch -d '2011-11-11 11:11:11' "$d"
done
manifest src >want
grep -q '^l dir-link -> a/b$' want || fail "manifest: links not listed"
grep -q "^f hello.txt .* $(($(date -d '2019-05-04 12:34:56' +%s)))\$" want ||
    fail "manifest: mtime rounding not as expected"

note "round trip: GNU, pax, ustar headers; plain and compressed"
for fmt in gnu pax; do
    roundtrip tar --format=$fmt -C src -cf - .
    manifest out >got
    diff want got || fail "round trip through a $fmt archive differs"
done
# ustar holds paths up to 256 bytes: without the deep one.
roundtrip tar --format=ustar --exclude=./deep -C src -cf - .
manifest out >got
grep -v '^. deep' want | diff - got || fail "round trip through a ustar archive differs"
roundtrip tar --format=gnu -C src -cf - . # the last checks below look at this one
[[ "$(stat -c %h out/a/hardlink.bin)" == 1 && "$(stat -c %h out/a/random.bin)" == 1 ]] ||
    fail "hard link not turned into a copy"
cmp out/a/hardlink.bin src/a/random.bin || fail "the hard link's copy differs"
for z in gzip xz zstd; do
    command -v $z >/dev/null || { note "no $z: skipped"; continue; }
    tar --format=pax -C src -cf - . | $z -c >src.tar.$z
    rm -rf out rt.vhd && mkdir out
    expect_status 0 "$MKVHD" -q --tar src.tar.$z --key-file key rt.vhd
    expect_status 0 "$VHDTOOL" export -q --tar --key-file key rt.vhd rt.tar
    tar -C out -xf rt.tar
    manifest out >got
    diff want got || fail "round trip through a .tar.$z file differs"
    rm rt.tar
done
expect_status 0 "$VHDFSCK" -n -q --key-file key rt.vhd
expect_status 0 "$VHDTOOL" export -q --key-file key rt.vhd rt.raw
expect_status 0 fsck.fat -n rt.raw
[[ -z "$(ls -A spool)" ]] || fail "spool files left in \$TMPDIR: $(ls -A spool)"

note "the volume is sized from the stream"
head -c $((60 << 20)) /dev/zero >big.bin
tar -cf - big.bin | "$MKVHD" --tar - --key-file key big.vhd >big.out 2>&1 ||
    { cat big.out; fail "a 60 MiB stream"; }
grep -q 'big.vhd: 1 files' big.out || { cat big.out; fail "summary"; }
expect_status 0 "$VHDTOOL" cat -q --key-file key big.vhd /big.bin
cmp -s "$T/out" big.bin || fail "big.bin differs"
rm big.bin

note "export --tar: refuses an existing file without --force"
expect_status 0 "$VHDTOOL" export -q --tar --key-file key rt.vhd x.tar
expect_status 1 "$VHDTOOL" export -q --tar --key-file key rt.vhd x.tar
expect_err 'x.tar: exists'
expect_status 0 "$VHDTOOL" export -q --tar --force --key-file key rt.vhd x.tar
tar -tf x.tar >x.list || fail "tar -tf x.tar"
grep -qx 'hello.txt' x.list || fail "x.tar lacks hello.txt"
note "export --tar with the archive first (DESIGN's spelling): the same archive"
sum_before=$(sha256sum rt.vhd)
expect_status 0 "$VHDTOOL" export -q --tar new.tar --key-file key rt.vhd
tar -tf new.tar >new.list || fail "tar -tf new.tar"
cmp -s new.list x.list || fail "archive-first export lists other entries"
"$VHDTOOL" export -q --tar - --key-file key rt.vhd >first.tar || fail "export --tar - IMAGE"
tar -tf first.tar >first.list || fail "tar -tf first.tar"
cmp -s first.list x.list || fail "export --tar - IMAGE lists other entries"
note "export --tar never writes an archive over an image, in either order"
cp rt.vhd other.vhd
expect_status 1 "$VHDTOOL" export -q --tar --force --key-file key rt.vhd other.vhd
expect_err '^vhdtool: other.vhd: is a vdisk image: refusing'
one_line_err
cmp -s rt.vhd other.vhd || fail "other.vhd changed"
expect_status 1 "$VHDTOOL" export -q --tar --force missing.tar --key-file key nowhere.vhd
expect_err '^vhdtool: missing.tar, nowhere.vhd: neither exists'
one_line_err
[[ ! -e nowhere.vhd && ! -e missing.tar ]] || fail "a file was created"
printf 'not an image\n' >text.txt
expect_status 4 "$VHDTOOL" export -q --tar --force out2.tar text.txt --key-file key
expect_err '^vhdtool: text.txt: '
one_line_err
[[ ! -e out2.tar ]] || fail "out2.tar was created"
expect_status 1 "$VHDTOOL" export -q --tar --force text.txt new.list --key-file key
expect_err '^vhdtool: text.txt, new.list: neither is a vdisk image'
[[ $(sha256sum rt.vhd) == "$sum_before" ]] || fail "the image changed"
note "export RAW still works beside --tar"
expect_status 0 "$VHDTOOL" export -q --key-file key rt.vhd plain.raw
expect_status 0 fsck.fat -n plain.raw

note "devices and fifos in an archive: skipped with a warning, or refused"
mkdir sp && printf 'x\n' >sp/file && mkfifo sp/fifo
tar -C sp -cf sp.tar file fifo
tar -C / -rf sp.tar dev/null
expect_status 0 "$MKVHD" -q --tar sp.tar --key-file key sp.vhd
expect_err '^mkvhd: sp.tar: fifo: skipped: fifo$'
expect_err '^mkvhd: sp.tar: dev/null: skipped: device$'
expect_status 0 "$VHDTOOL" ls -q -R --key-file key sp.vhd
printf '/:\ndev\nfile\n\n/dev:\n' | diff - "$T/out" || fail "specials listing" # dev/ is implied, as tar -x makes it
expect_status 1 "$MKVHD" -q --refuse-special --tar sp.tar --key-file key sp2.vhd
expect_err 'sp.tar: fifo: fifo \(refused: --refuse-special\)'
one_line_err
no_leftovers sp2.vhd

note "names made safe: leading '/' stripped, '..' refused, nothing below a link"
mkdir -p abs/x && printf 'abs\n' >abs/x/f
tar -cPf abs.tar "$PWD/abs/x/f"
expect_status 0 "$MKVHD" -q --tar abs.tar --key-file key abs.vhd
expect_status 0 "$VHDTOOL" cat -q --key-file key abs.vhd "${PWD#/}/abs/x/f"
[[ "$(cat "$T/out")" == abs ]] || fail "absolute name not stored below the root"
(cd abs/x && tar -cPf ../../dotdot.tar ../x/f)
expect_status 1 "$MKVHD" -q --tar dotdot.tar --key-file key dd.vhd
expect_err "dotdot.tar: \.\./x/f: a '\.\.' component \(refused"
one_line_err
no_leftovers dd.vhd
mkdir lk && ln -s /tmp lk/l && mkdir lk2 && mkdir lk2/l && printf 'x\n' >lk2/l/evil
tar -C lk -cf below.tar l && tar -C lk2 -rf below.tar l/evil
expect_status 1 "$MKVHD" -q --tar below.tar --key-file key below.vhd
expect_err "below.tar: l/evil: below 'l', a symbolic link"
no_leftovers below.vhd

note "bad archives: not tar, truncated, missing; usage errors"
head -c 4096 /dev/urandom >noise.bin
expect_status 1 "$MKVHD" -q --tar noise.bin --key-file key n.vhd
expect_err '^mkvhd: noise.bin: '
one_line_err
no_leftovers n.vhd
tar -C src -cf full.tar . && head -c 300000 full.tar >trunc.tar
expect_status 1 "$MKVHD" -q --tar trunc.tar --key-file key tr.vhd
expect_err '^mkvhd: trunc.tar: '
no_leftovers tr.vhd
expect_status 1 "$MKVHD" -q --tar missing.tar --key-file key m.vhd
expect_err 'missing.tar: No such file'
expect_status 2 "$MKVHD" -q --tar x.tar --key-file key u.vhd src
expect_err 'one of SOURCE_DIR, --tar and --from-raw'
expect_status 2 "$MKVHD" -q --tar x.tar --dereference --key-file key u.vhd
[[ -z "$(ls -A spool)" ]] || fail "spool files left in \$TMPDIR: $(ls -A spool)"

note "names that clash in case: --on-clash as for a directory"
mkdir cl && printf 'a\n' >cl/README && printf 'b\n' >cl/Readme
tar -C cl -cf cl.tar README Readme
expect_status 1 "$MKVHD" -q --tar cl.tar --key-file key cl.vhd
expect_err "cl.tar: Readme: its name clashes with 'README' .*--on-clash"
no_leftovers cl.vhd
expect_status 0 "$MKVHD" -q --on-clash=rename --tar cl.tar --key-file key cl.vhd
expect_err "cl.tar: Readme: stored as 'Readme~1'"
expect_status 0 "$VHDTOOL" cat -q --key-file key cl.vhd /Readme~1
[[ "$(cat "$T/out")" == b ]] || fail "Readme~1 does not hold Readme"
expect_status 2 "$MKVHD" -q --tar - --passphrase-file - cl2.vhd
expect_err 'cannot both read standard input'

note "a name FAT32 cannot store: an error naming the entry, as for a directory"
mkdir badn && printf 'x\n' >'badn/what?.txt'
tar -C badn -cf badn.tar 'what?.txt'
expect_status 1 "$MKVHD" -q --tar badn.tar --key-file key badn.vhd
expect_err 'badn.tar: what\?\.txt: .*FAT32 cannot store this name'
one_line_err
no_leftovers badn.vhd

note "an empty archive gives an empty volume"
tar -cf empty.tar --files-from /dev/null
expect_status 0 "$MKVHD" -q --tar empty.tar --key-file key e.vhd
expect_status 0 "$VHDTOOL" ls -q --key-file key e.vhd
[[ ! -s "$T/out" ]] || fail "empty archive: $(cat "$T/out")"

note "the man pages say it"
grep -q 'Hard links' "$VD_SRC/docs/man/mkvhd.1" || fail "mkvhd.1 does not mention hard links"
grep -q 'TMPDIR' "$VD_SRC/docs/man/mkvhd.1" || fail "mkvhd.1 does not say where the spool goes"
grep -qF '.B vhdtool export \-\-tar' "$VD_SRC/docs/man/vhdtool.1" || fail "vhdtool.1 lacks export --tar"
echo "PASS"
