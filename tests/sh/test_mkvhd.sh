#!/bin/bash
# mkvhd end to end, checked with oracles that are not vdisk: the volume is
# exported and read by fsck.fat and mtools and compared with the source
# tree (names, contents, mtimes); qemu-img reads the VHD container.
. "$(dirname "$0")/lib.sh"
need "$MKVHD" "$VHDTOOL" fsck.fat mcopy
export TZ=UTC MTOOLS_SKIP_CHECK=1
mkdir "$T/w" && cd "$T/w" || exit 1

no_leftovers() { # no image and no temporary for $1
    [[ ! -e "$1" ]] || fail "$1 exists after a failed build"
    ! compgen -G "$1.tmp.*" >/dev/null || fail "temporary left: $(compgen -G "$1.tmp.*")"
}

note "help, version, usage errors"
expect_status 0 "$MKVHD" --help
expect_out '^Usage: mkvhd'
expect_status 0 "$MKVHD" --version
expect_out '^mkvhd \(vdisk\) [0-9]+\.[0-9]+\.[0-9]+$'
expect_status 2 "$MKVHD" --bogus x.vhd
expect_err "unknown option '--bogus'"
expect_err "Try 'mkvhd --help'"
expect_status 2 "$MKVHD" --size 12Q --new-key-file k0 x.vhd
expect_status 2 "$MKVHD"
expect_status 2 "$MKVHD" --new-key-file k0 x.vhd src extra
no_leftovers x.vhd
[[ ! -e k0 ]] || fail "key file made by a usage error"

note "no key and no terminal: usage error"
expect_status 2 "$MKVHD" -q nokey.vhd
expect_err 'no key option and no terminal'
no_leftovers nokey.vhd

note "a varied tree"
mkdir -p src/nested/deeper/deepest src/emptydir
printf 'hello\n' >src/hello.txt
: >src/empty
head -c $((3 << 20)) /dev/urandom >src/nested/random.bin
printf 'accents\n' >"src/nested/Ünïcödé façade.txt"
long=$(printf 'long-name-%.0s' {1..20}).txt # 200 characters
printf 'long\n' >"src/nested/deeper/$long"
seq 1 20000 >src/nested/deeper/deepest/numbers.txt
touch -d '2019-05-04 12:34:56' src/hello.txt
touch -d '2001-02-03 04:05:06' src/nested/deeper
expect_status 0 "$MKVHD" --new-key-file key img.vhd src
expect_out 'img.vhd: 6 files'
[[ "$(stat -c %a key)" == 600 ]] || fail "key file mode $(stat -c %a key)"
[[ "$(stat -c %s key)" == 32 ]] || fail "key file size"
! compgen -G "img.vhd.tmp.*" >/dev/null || fail "temporary left"

note "qemu-img reads the container"
if command -v qemu-img >/dev/null; then
    qemu-img info -f vpc --output=json img.vhd >qi.json
    want=$(($(stat -c %s img.vhd) - 512))
    grep -q "\"virtual-size\": $want" qi.json || { cat qi.json; fail "virtual size not $want"; }
fi

note "independent oracles: fsck.fat, mtools, diff, mtimes"
expect_status 0 "$VHDTOOL" export -q --key-file key img.vhd raw.img
expect_status 0 fsck.fat -n raw.img
mkdir out
mcopy -s -m -i raw.img ::/ out/
diff -r src out || fail "mtools copy differs from the source tree"
for f in hello.txt nested/random.bin nested/deeper; do
    a=$(stat -c %Y "src/$f") b=$(stat -c %Y "out/$f")
    (( a - b <= 2 && b - a <= 2 )) || fail "$f: mtime $b, source $a"
done
[[ "$(stat -c %Y out/hello.txt)" == "$(date -d '2019-05-04 12:34:56' +%s)" ]] ||
    fail "hello.txt mtime not kept"

note "an existing image is refused"
sum=$(md5sum <img.vhd)
expect_status 1 "$MKVHD" -q --key-file key img.vhd src
expect_err 'img.vhd: exists'
[[ "$(md5sum <img.vhd)" == "$sum" ]] || fail "existing image was modified"
expect_status 0 "$MKVHD" -q --force --key-file key img.vhd src
[[ "$(md5sum <img.vhd)" != "$sum" ]] || fail "--force did not rebuild"

note "empty volume of --size"
expect_status 0 "$MKVHD" -q --size 64M --label DATA --key-file key empty.vhd
expect_status 0 "$VHDTOOL" info --json -q --key-file key empty.vhd
expect_out '"volume_bytes": 67108864'
expect_out '"label": "DATA"'
expect_out '"files": 0'

note "too small, does not fit, volume full: exit 1, nothing left behind"
expect_status 1 "$MKVHD" -q --size 16M --key-file key small.vhd
expect_err 'at least 33'
no_leftovers small.vhd
mkdir bigsrc && truncate -s 50M bigsrc/big
expect_status 1 "$MKVHD" -q --size 40M --key-file key small.vhd bigsrc
expect_err 'does not fit'
no_leftovers small.vhd
rm bigsrc/big && truncate -s 34400K bigsrc/big # fits the estimate, not the volume
expect_status 1 "$MKVHD" -q --size 34M --key-file key small.vhd bigsrc
expect_err 'bigsrc/big: .*(no space|full)'
no_leftovers small.vhd
expect_status 1 "$MKVHD" -q --size 34M --new-key-file newkey small.vhd bigsrc
[[ ! -e newkey ]] || fail "new key file left after a failed build"

note "specials: skipped with a warning, or refused"
mkdir sp && printf 'x\n' >sp/file && ln -s file sp/link && mkfifo sp/fifo
expect_status 0 "$MKVHD" -q --key-file key sp.vhd sp
expect_err '^mkvhd: sp/fifo: skipped: fifo$'
! grep -q 'sp/link' "$T/err" || fail "a link was reported: $(cat "$T/err")"
expect_status 0 "$VHDTOOL" ls -q --key-file key sp.vhd
[[ "$(cat "$T/out")" == $'file\nlink' ]] || fail "listing: $(cat "$T/out")"
expect_status 1 "$MKVHD" -q --refuse-special --key-file key sp2.vhd sp
expect_err 'sp/fifo: .*refused'
one_line_err
no_leftovers sp2.vhd

note "names FAT cannot store; names that clash without case"
mkdir bad && printf 'x\n' >'bad/what?.txt'
expect_status 1 "$MKVHD" -q --key-file key bad.vhd bad
expect_err 'bad/what\?\.txt: '
one_line_err
no_leftovers bad.vhd
mkdir clash && : >clash/Readme && : >clash/README
expect_status 1 "$MKVHD" -q --key-file key clash.vhd clash
expect_err "clash/Readme: its name clashes with 'README' .*--on-clash"
one_line_err
no_leftovers clash.vhd

note "several slots: passphrase file + key file + sealed; each opens"
printf 'correct horse\n' >pw
expect_status 0 "$VHDTOOL" keygen --secret id.sec --public id.pub
expect_status 0 "$MKVHD" -q --passphrase-file pw --key-file key --seal-to id.pub multi.vhd src
expect_status 0 "$VHDTOOL" keyslot list multi.vhd
expect_out '^0 keyfile'
expect_out '^1 passphrase'
expect_out "^2 sealed $(cat id.pub)"
for k in "--passphrase-file pw" "--key-file key" "--identity id.sec"; do
    # shellcheck disable=SC2086
    expect_status 0 "$VHDTOOL" cat -q $k multi.vhd /hello.txt
    [[ "$(cat "$T/out")" == hello ]] || fail "cat with $k"
done
printf 'wrong\n' >pw2
expect_status 3 "$VHDTOOL" cat -q --passphrase-file pw2 multi.vhd /hello.txt
one_line_err
expect_status 0 "$VHDTOOL" keygen --secret other.sec --public other.pub
expect_status 3 "$VHDTOOL" ls -q --identity other.sec multi.vhd
one_line_err

note "--from-raw: a volume made by mkfs.fat and mcopy"
need mkfs.fat
mkfs.fat -F 32 -S 512 -s 1 -C fat.raw 40960 >/dev/null
mcopy -m -i fat.raw src/hello.txt src/nested/random.bin ::/
expect_status 0 "$MKVHD" -q --from-raw fat.raw --key-file key fromraw.vhd
expect_status 0 "$VHDTOOL" cat -q --key-file key fromraw.vhd /random.bin
cmp "$T/out" src/nested/random.bin || fail "random.bin differs after --from-raw"
expect_status 0 "$VHDTOOL" export -q --key-file key fromraw.vhd back.raw
cmp fat.raw back.raw || fail "export of a --from-raw image differs from the raw volume"
head -c 1M /dev/urandom >notfat.raw
expect_status 1 "$MKVHD" -q --from-raw notfat.raw --key-file key nf.vhd
expect_err 'not a FAT32 volume'
no_leftovers nf.vhd

note "--anchor creates the anchor; an old copy of the image is refused"
expect_status 0 "$MKVHD" -q --anchor anc --key-file key anc.vhd src
[[ -s anc ]] || fail "anchor file not made"
cp anc.vhd anc-old.vhd
expect_status 0 "$VHDTOOL" put -q --anchor anc --key-file key anc.vhd pw /pw
cp anc-old.vhd anc.vhd
expect_status 4 "$VHDTOOL" ls -q --anchor anc --key-file key anc.vhd
expect_err 'rollback|older'

note "an image built inside its own source tree does not copy itself"
mkdir self && printf 'x\n' >self/x
(cd self && "$MKVHD" -q --new-key-file nk --anchor anc img.vhd .) || fail "mkvhd in its own tree"
expect_status 0 "$VHDTOOL" ls -q --key-file self/nk --anchor self/anc self/img.vhd
[[ "$(cat "$T/out")" == x ]] || fail "own files copied: $(cat "$T/out")"

note "a label FAT cannot store"
expect_status 1 "$MKVHD" -q --label 'bad/label' --key-file key lab.vhd
expect_err 'bad/label: not a FAT label'
no_leftovers lab.vhd

note "progress on a terminal only; quiet builds are silent"
expect_status 0 "$MKVHD" -q --key-file key quiet.vhd src
[[ ! -s "$T/err" && ! -s "$T/out" ]] || fail "-q printed something"
expect_status 0 "$MKVHD" --key-file key pipe.vhd src
! grep -q 'copying' "$T/err" || fail "progress shown in a pipe"
if command -v script >/dev/null; then
    script -qec "'$MKVHD' --key-file key tty.vhd src" /dev/null >tty.out </dev/null
    grep -q 'copying: .*MiB' tty.out || { cat tty.out; fail "no progress on a terminal"; }
    script -qec "'$MKVHD' -q --key-file key ttyq.vhd src" /dev/null >ttyq.out </dev/null
    ! grep -q 'copying' ttyq.out || fail "progress shown with -q"
fi

note "the man page renders"
if command -v groff >/dev/null; then
    groff -man -Tutf8 -ww -z "$VD_SRC/docs/man/mkvhd.1" 2>man.err
    [[ ! -s man.err ]] || { cat man.err; fail "mkvhd.1 has roff warnings"; }
elif command -v man >/dev/null; then
    man -l "$VD_SRC/docs/man/mkvhd.1" >/dev/null
else
    note "no groff or man: man page not rendered"
fi
note "empty volumes whose FAT sizing ends between two sizes: FSInfo agrees with the FAT"
# 64M and 3G made vhdfsck report "FSInfo says N free clusters, the FAT has
# N-2" on a new image: mkfs counted the clusters for the other FAT size.
need "$VHDFSCK"
for sz in 64M 3G 100M; do
    rm -f empty.vhd
    expect_status 0 "$MKVHD" -q --size "$sz" --key-file key empty.vhd
    expect_status 0 "$VHDFSCK" -n --key-file key empty.vhd
done
rm -f empty.vhd

echo "PASS"
