#!/bin/bash
# A real application tree made at test time — relative and absolute links,
# a link to a directory, a dangling link, a compiled C program, a shell
# script, a Python venv (when python3 -m venv works), names that clash in
# case — through mkvhd, vhdtool ls/get, vhdfsck, and the exported raw
# volume through fsck.fat and mtools. What comes back is compared with a
# manifest of the source made with find/readlink/md5sum, not with vdisk.
# Also --dereference for mkvhd, put and get, and (where FUSE mounts work)
# the program and the script run from a vhdmount mount through links.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vhdmount_lib.sh"
need "$MKVHD" "$VHDTOOL" "$VHDFSCK" cc fsck.fat mdir
export TZ=UTC MTOOLS_SKIP_CHECK=1 LC_ALL=C.UTF-8
mkdir "$T/w" && cd "$T/w" || exit 1
head -c 32 /dev/urandom >key
K=(-q --key-file key)

manifest() { # DIR: type, path, link target or MD5, sorted
    (cd "$1" && find . -mindepth 1 -printf '%y %P\n' | LC_ALL=C sort | while read -r y p; do
        case $y in
        f) echo "f $p $(md5sum <"$p" | cut -c1-32)" ;;
        l) echo "l $p -> $(readlink "$p")" ;;
        *) echo "$y $p" ;;
        esac
    done)
}

note "the tree"
mkdir -p app/bin app/lib app/share/doc app/include
cat >prog.c <<'EOF'
#include <stdio.h>
int main(int argc, char **argv)
{
    (void)argc;
    printf("hello from %s\n", argv[0]);
    return 0;
}
EOF
cc -O1 -o app/bin/prog prog.c
printf '#!/bin/sh\necho "script ran: $0"\n' >app/bin/script.sh
chmod +x app/bin/script.sh
ln -s prog app/bin/link-to-prog                 # relative
ln -s script.sh app/bin/link-to-script
ln -s /bin/prog app/abs-link-to-prog            # absolute: from the volume's root
printf 'library\n' >app/lib/libfoo.so.1.2
ln -s libfoo.so.1.2 app/lib/libfoo.so.1
ln -s libfoo.so.1 app/lib/libfoo.so             # a chain
ln -s lib app/lib64                             # to a directory
ln -s ../no/such/file app/share/dangling        # dangling
printf 'readme\n' >app/share/doc/README
printf 'upper\n' >app/include/Config.h
printf 'lower\n' >app/include/config.h          # clashes with Config.h
venv=0
if command -v python3 >/dev/null && python3 -m venv --without-pip app/venv >venv.log 2>&1; then
    venv=1
    [[ -L app/venv/bin/python ]] || fail "venv without bin/python link"
else
    note "SKIP venv part: python3 -m venv does not work here: $(tail -1 venv.log 2>/dev/null || echo 'no python3')"
    rm -rf app/venv
fi
manifest app >want

note "mkvhd: links stored as links; the clash renamed"
expect_status 1 "$MKVHD" "${K[@]}" app.vhd app
expect_err "app/include/config\.h: its name clashes with 'Config\.h' .*--on-clash"
expect_status 0 "$MKVHD" --on-clash=rename --key-file key app.vhd app
expect_err "app/include/config\.h: stored as 'config~1\.h'"
expect_out 'symbolic links'

note "vhdtool ls -l shows each link with its target (from readlink of the source)"
expect_status 0 "$VHDTOOL" ls -l -R "${K[@]}" app.vhd
cp "$T/out" ls.txt
while read -r l; do
    p=${l#l }; p=${p%% -> *}; tgt=${l#* -> }
    grep -qF " ${p##*/} -> $tgt" ls.txt || { cat ls.txt; fail "ls -l lacks ${p##*/} -> $tgt"; }
done < <(grep '^l ' want)
grep -q '^l .* link-to-prog -> prog$' ls.txt || fail "ls -l: no l type for a link"
expect_status 0 "$VHDTOOL" cat "${K[@]}" app.vhd /lib64/libfoo.so # follows 3 links
[[ "$(cat "$T/out")" == library ]] || fail "cat through a chain of links"
expect_status 0 "$VHDTOOL" cat "${K[@]}" app.vhd /abs-link-to-prog
cmp -s "$T/out" app/bin/prog || fail "an absolute link is not resolved from the volume root"

note "vhdtool get gives the tree back, links as host links"
expect_status 0 "$VHDTOOL" get "${K[@]}" app.vhd / got
mv got/include/config~1.h got/include/config.h # the one renamed name
manifest got >have
diff want have || fail "get: the tree differs from the source"
expect_status 0 "$VHDTOOL" get "${K[@]}" app.vhd /bin/link-to-prog one-link
[[ -L one-link && "$(readlink one-link)" == prog ]] || fail "get of a single link"
got/bin/prog >run.out && grep -q '^hello from' run.out || fail "the program copied out does not run"
if ((venv)); then
    [[ "$(readlink got/venv/bin/python)" == "$(readlink app/venv/bin/python)" ]] ||
        fail "venv bin/python link"
fi

note "vhdfsck clean; fsck.fat and mtools clean on the export; a link is a small file to them"
expect_status 0 "$VHDFSCK" -n "${K[@]}" app.vhd
expect_status 0 "$VHDTOOL" export "${K[@]}" app.vhd app.raw
expect_status 0 fsck.fat -n app.raw
expect_status 0 mdir -/ -i app.raw ::/
expect_status 0 mdir -i app.raw ::/bin
grep -Eq 'link-to-prog' "$T/out" || { cat "$T/out"; fail "mdir lacks link-to-prog"; }
expect_status 0 mtype -i app.raw ::/bin/link-to-prog
head -c 4 "$T/out" | grep -q XSym || fail "a link is not a Minshall+French file to mtools"
[[ "$(stat -c %s "$T/out")" == 1067 ]] || fail "link file size $(stat -c %s "$T/out")"

note "--dereference: mkvhd copies what links point to; dangling ones are specials"
expect_status 0 "$MKVHD" --dereference --on-clash=rename --key-file key deref.vhd app
expect_err '^mkvhd: app/share/dangling: skipped: dangling symbolic link$'
# On the host, /bin/prog is not this tree's program: that link dangles there.
expect_err '^mkvhd: app/abs-link-to-prog: skipped: dangling symbolic link$'
[[ "$(grep -vc 'freshness\|stored as' "$T/err")" == 2 ]] || { cat "$T/err"; fail "other warnings"; }
expect_status 0 "$VHDTOOL" ls -l -R "${K[@]}" deref.vhd
! grep -q ' -> ' "$T/out" || { cat "$T/out"; fail "--dereference stored links"; }
expect_status 0 "$VHDTOOL" cat "${K[@]}" deref.vhd /bin/link-to-prog
cmp -s "$T/out" app/bin/prog || fail "dereferenced link-to-prog differs"
expect_status 0 "$VHDTOOL" ls "${K[@]}" deref.vhd /lib64
grep -qx 'libfoo.so.1.2' "$T/out" || fail "lib64 not copied as a directory"
expect_status 1 "$MKVHD" --dereference --refuse-special --on-clash=rename "${K[@]}" deref2.vhd app
expect_err 'app/abs-link-to-prog: dangling symbolic link \(refused'
one_line_err
mkdir loop && ln -s . loop/self
expect_status 1 "$MKVHD" --dereference "${K[@]}" loop.vhd loop
expect_err 'loop/self: a symbolic link leads back'
[[ ! -e loop.vhd ]] || fail "image left after a loop"

note "put copies links as links, or with --dereference their targets"
expect_status 0 "$MKVHD" -q --size 40M --key-file key put.vhd
expect_status 0 "$VHDTOOL" put "${K[@]}" put.vhd app/lib /lib
expect_status 0 "$VHDTOOL" ls -l "${K[@]}" put.vhd /lib
grep -q ' libfoo.so -> libfoo.so.1$' "$T/out" || { cat "$T/out"; fail "put: link not kept"; }
expect_status 0 "$VHDTOOL" put --dereference "${K[@]}" put.vhd app/lib /lib2
expect_status 0 "$VHDTOOL" ls -l "${K[@]}" put.vhd /lib2
! grep -q ' -> ' "$T/out" || { cat "$T/out"; fail "put --dereference stored links"; }
expect_status 0 "$VHDTOOL" cat "${K[@]}" put.vhd /lib2/libfoo.so
[[ "$(cat "$T/out")" == library ]] || fail "put --dereference: libfoo.so"
# put over an existing link replaces the link, never writes through it
printf 'new\n' >libfoo.so
expect_status 0 "$VHDTOOL" put "${K[@]}" put.vhd libfoo.so /lib/libfoo.so
expect_status 0 "$VHDTOOL" cat "${K[@]}" put.vhd /lib/libfoo.so.1.2
[[ "$(cat "$T/out")" == library ]] || fail "put wrote through a link"

note "get --dereference copies targets; a dangling link is an error"
expect_status 0 "$VHDTOOL" get --dereference "${K[@]}" app.vhd /lib64 g64
[[ -d g64 && ! -L g64 && ! -L g64/libfoo.so ]] || fail "get --dereference kept links"
cmp g64/libfoo.so app/lib/libfoo.so.1.2 || fail "get --dereference: contents"
expect_status 1 "$VHDTOOL" get --dereference "${K[@]}" app.vhd /share gs
expect_err 'share/dangling: a dangling symbolic link'
one_line_err
note "mounted: the program and the script run from the image through links"
if [[ ! -x "$VHDMOUNT" ]] || ! command -v fusermount3 >/dev/null || [[ ! -r /dev/fuse ]]; then
    note "SKIP mount part: vhdmount, fusermount3 or a usable /dev/fuse missing"
else
    mkdir "$T/mnt"
    mnt_start app.vhd "$T/mnt" --key-file key -o ro
    (cd "$T/mnt" && ./bin/link-to-prog) >run.out || fail "./bin/link-to-prog failed from the mount"
    [[ "$(cat run.out)" == 'hello from ./bin/link-to-prog' ]] || fail "program printed: $(cat run.out)"
    (cd "$T/mnt" && ./bin/link-to-script) >run.out || fail "./bin/link-to-script failed"
    [[ "$(cat run.out)" == 'script ran: ./bin/link-to-script' ]] || fail "script printed: $(cat run.out)"
    while read -r l; do # readlink on the mount gives each stored target
        p=${l#l }; p=${p%% -> *}; tgt=${l#* -> }
        [[ "$p" == include/config.h ]] && continue
        [[ "$(readlink "$T/mnt/$p")" == "$tgt" ]] || fail "readlink $p on the mount: $(readlink "$T/mnt/$p")"
    done < <(grep '^l ' want)
    [[ "$(cat "$T/mnt/lib64/libfoo.so")" == library ]] || fail "a chain of links on the mount"
    if ((venv)); then
        out=$("$T/mnt/venv/bin/python" -c 'import sys; print(sys.prefix)') ||
            fail "the venv's python does not run from the mount"
        [[ "$out" == "$T/mnt/venv" ]] || fail "venv prefix on the mount: $out"
    fi
    mnt_stop "$T/mnt"
fi
echo "PASS"
