#!/bin/bash
# --on-clash=fail|skip|rename for mkvhd and vhdtool put: names equal but
# for case (FAT32 ignores case). The expected names are written out here
# from the documented rule (sorted byte order: the first keeps its name,
# later ones become NAME~N.EXT with the smallest free N), and contents are
# compared with the source files, so the test does not trust the tool.
. "$(dirname "$0")/lib.sh"
need "$MKVHD" "$VHDTOOL" "$VHDFSCK" fsck.fat
export TZ=UTC
mkdir "$T/w" && cd "$T/w" || exit 1

no_leftovers() {
    [[ ! -e "$1" ]] || fail "$1 exists after a failed build"
    ! compgen -G "$1.tmp.*" >/dev/null || fail "temporary left: $(compgen -G "$1.tmp.*")"
}
# make_tree DIR [reverse]: the same tree, entries created in either order
# (so directory order on the host differs between the two).
make_tree() {
    local d=$1 names=(README Readme sub/FOO.h sub/Foo.h sub/foo.h Dir/x dir/y .bashrc .BASHRC)
    mkdir -p "$d/sub" "$d/Dir" "$d/dir"
    if [[ ${2:-} == reverse ]]; then
        local i
        for ((i = ${#names[@]} - 1; i >= 0; i--)); do printf '%s\n' "${names[i]}" >"$d/${names[i]}"; done
    else
        local n
        for n in "${names[@]}"; do printf '%s\n' "$n" >"$d/$n"; done
    fi
}
make_tree src
make_tree src2 reverse
head -c 32 /dev/urandom >key

note "fail (the default): one line naming the path and the option, no image"
expect_status 1 "$MKVHD" -q --key-file key f.vhd src
one_line_err
expect_err '^mkvhd: src/(\.bashrc|Readme|dir|sub/Foo\.h): .*clashes with .*--on-clash'
no_leftovers f.vhd
expect_status 2 "$MKVHD" -q --on-clash=bogus --key-file key f.vhd src
expect_err 'on-clash=bogus'

note "skip: one line per skipped entry; the first name in byte order stays"
expect_status 0 "$MKVHD" -q --on-clash=skip --key-file key s.vhd src
n=$(grep -c 'skipped: its name clashes' "$T/err" || true)
[[ "$n" == 5 ]] || { cat "$T/err"; fail "$n skip lines, expected 5"; }
expect_status 0 "$VHDTOOL" ls -q -R --key-file key s.vhd
cat >want.s <<'EOF'
/:
.BASHRC
Dir
README
sub

/Dir:
x

/sub:
FOO.h
EOF
diff want.s "$T/out" || fail "skip: listing differs"

note "rename: NAME~N.EXT, one line each, contents kept"
expect_status 0 "$MKVHD" -q --on-clash=rename --key-file key r.vhd src
n=$(grep -c 'stored as' "$T/err" || true)
[[ "$n" == 5 ]] || { cat "$T/err"; fail "$n rename lines, expected 5"; }
expect_err "src/sub/foo\.h: stored as 'foo~2\.h'"
expect_status 0 "$VHDTOOL" ls -q -R --key-file key r.vhd
cat >want.r <<'EOF'
/:
.BASHRC
.bashrc~1
Dir
README
Readme~1
dir~1
sub

/Dir:
x

/dir~1:
y

/sub:
FOO.h
Foo~1.h
foo~2.h
EOF
diff want.r "$T/out" || fail "rename: listing differs"
cp "$T/out" ls.r
for pair in .bashrc:.bashrc~1 Readme:Readme~1 dir/y:dir~1/y sub/Foo.h:sub/Foo~1.h \
    sub/foo.h:sub/foo~2.h README:README sub/FOO.h:sub/FOO.h; do
    expect_status 0 "$VHDTOOL" cat -q --key-file key r.vhd "/${pair#*:}"
    cmp -s "$T/out" "src/${pair%%:*}" || fail "/${pair#*:} is not src/${pair%%:*}"
done
expect_status 0 "$VHDFSCK" -n -q --key-file key r.vhd
expect_status 0 "$VHDTOOL" export -q --key-file key r.vhd r.raw
expect_status 0 fsck.fat -n r.raw

note "rename is the same whatever the host's directory order"
expect_status 0 "$MKVHD" -q --on-clash=rename --key-file key r2.vhd src2
expect_status 0 "$VHDTOOL" ls -q -R --key-file key r2.vhd
diff ls.r "$T/out" || fail "a tree made in another order got other names"
for f in Readme~1 sub/foo~2.h; do
    expect_status 0 "$VHDTOOL" cat -q --key-file key r2.vhd "/$f"
    a=$(cat "$T/out")
    expect_status 0 "$VHDTOOL" cat -q --key-file key r.vhd "/$f"
    [[ "$a" == "$(cat "$T/out")" ]] || fail "/$f holds another file in the second build"
done

note "put: fail, skip, rename; a put repeated replaces what it made"
expect_status 0 "$MKVHD" -q --size 40M --key-file key p.vhd
expect_status 1 "$VHDTOOL" put -q --key-file key p.vhd src /c
expect_err 'clashes with .*--on-clash'
expect_status 0 "$VHDTOOL" put -q --on-clash=skip --key-file key p.vhd src /s
expect_status 0 "$VHDTOOL" ls -q --key-file key p.vhd /s/sub
[[ "$(cat "$T/out")" == FOO.h ]] || fail "put skip: $(cat "$T/out")"
# Into "/": the volume gets /src (an existing directory receives SRC's
# name), and the same again merges into /src.
expect_status 0 "$VHDTOOL" put -q --on-clash=rename --key-file key p.vhd src /
expect_status 0 "$VHDTOOL" ls -q --key-file key p.vhd /src/sub
printf 'FOO.h\nFoo~1.h\nfoo~2.h\n' | diff - "$T/out" || fail "put rename: names"
printf 'changed\n' >src/sub/foo.h
expect_status 0 "$VHDTOOL" put -q --on-clash=rename --key-file key p.vhd src /
expect_status 0 "$VHDTOOL" ls -q --key-file key p.vhd /src/sub
printf 'FOO.h\nFoo~1.h\nfoo~2.h\n' | diff - "$T/out" || fail "a repeated put made new names"
expect_status 0 "$VHDTOOL" cat -q --key-file key p.vhd /src/sub/foo~2.h
[[ "$(cat "$T/out")" == changed ]] || fail "a repeated put did not replace foo~2.h"
# A single file whose name clashes with one already in the volume.
printf 'solo\n' >readme
expect_status 1 "$VHDTOOL" put -q --key-file key p.vhd readme /s/
expect_err "readme: its name clashes with 'README'"
expect_status 0 "$VHDTOOL" put -q --on-clash=rename --key-file key p.vhd readme /s/
expect_status 0 "$VHDTOOL" cat -q --key-file key p.vhd /s/readme~1
[[ "$(cat "$T/out")" == solo ]] || fail "put of a single clashing file"
expect_status 0 "$VHDFSCK" -n -q --key-file key p.vhd

note "/usr/include (xt_connmark.h beside xt_CONNMARK.h) builds with rename"
if [[ -e /usr/include/linux/netfilter/xt_CONNMARK.h && -e /usr/include/linux/netfilter/xt_connmark.h ]]; then
    expect_status 1 "$MKVHD" -q --key-file key inc.vhd /usr/include
    expect_err 'xt_connmark\.h: its name clashes with .xt_CONNMARK\.h. .*--on-clash'
    expect_status 0 "$MKVHD" -q --on-clash=rename --key-file key inc.vhd /usr/include
    expect_err "xt_connmark\.h: stored as 'xt_connmark~1\.h'"
    expect_status 0 "$VHDTOOL" cat -q --key-file key inc.vhd /linux/netfilter/xt_connmark~1.h
    cmp -s "$T/out" /usr/include/linux/netfilter/xt_connmark.h || fail "xt_connmark~1.h differs"
    expect_status 0 "$VHDFSCK" -n -q --key-file key inc.vhd
else
    note "no kernel headers with xt_connmark.h: that part skipped"
fi
echo "PASS"
