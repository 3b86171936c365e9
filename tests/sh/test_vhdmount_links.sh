#!/bin/bash
# Symbolic links and vfat modes through vhdmount: ln -s and readlink, a C
# program compiled here run through a relative link from the mount, a
# shell script run directly, links kept across a remount and seen by
# fsck.fat/mtools as 1067-byte files; the vfat options uid=, gid=,
# umask=, fmask=, showexec and quiet (a file under fmask=0111 is not
# executable; chmod/chown as vfat answers them). Skips (77, with the
# reason) where FUSE cannot mount or there is no C compiler.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vhdmount_lib.sh"
fuse_need
need cc readlink stat
umask 022

image_new 64M

cat >"$T/prog.c" <<'EOF'
#include <stdio.h>
int main(int argc, char **argv)
{
    printf("prog says %s\n", argc > 1 ? argv[1] : "nothing");
    return 0;
}
EOF
cc -o "$T/prog" "$T/prog.c" || fail "cc could not build the test program"

note "ln -s, readlink, a program run through a relative link, a script"
mnt_start "$IMG" "$M" --key-file "$KEY"
mkdir -p "$M/bin" "$M/lib/deep/er" "$M/app"
cp "$T/prog" "$M/bin/prog"
ln -s prog "$M/bin/link-to-prog" || fail "ln -s in the mount"
ln -s ../bin "$M/app/bin" || fail "ln -s to a directory"
ln -s /lib/deep "$M/app/abs-in-volume"
ln -s ../../nowhere "$M/lib/dangling"
printf '#!/bin/sh\necho "script ran with $1"\n' >"$M/app/run.sh"
ln -s ../app/run.sh "$M/bin/run"
[[ $(readlink "$M/bin/link-to-prog") == prog ]] || fail "readlink bin/link-to-prog"
[[ $(readlink "$M/app/bin") == ../bin ]] || fail "readlink app/bin"
[[ $(readlink "$M/lib/dangling") == ../../nowhere ]] || fail "readlink of a dangling link"
[[ -L "$M/lib/dangling" && ! -e "$M/lib/dangling" ]] || fail "a dangling link is a link to nothing"
[[ $(stat -c '%A %s' "$M/bin/link-to-prog") == 'lrwxrwxrwx 4' ]] ||
    fail "link shown as $(stat -c '%A %s' "$M/bin/link-to-prog"), want lrwxrwxrwx 4"
[[ $(stat -c %A "$M/bin/prog") == -rwxr-xr-x ]] || fail "a copied file is $(stat -c %A "$M/bin/prog")"
[[ $(find "$M/bin" -maxdepth 1 -type l | wc -l) == 2 ]] || fail "readdir does not report links as links"
(cd "$M" && ./bin/link-to-prog hello) >"$T/out" || fail "./bin/link-to-prog failed"
[[ $(cat "$T/out") == 'prog says hello' ]] || fail "the program printed: $(cat "$T/out")"
(cd "$M/app" && ./bin/link-to-prog via-dir-link) >"$T/out" || fail "app/bin/link-to-prog failed"
[[ $(cat "$T/out") == 'prog says via-dir-link' ]] || fail "through app/bin: $(cat "$T/out")"
[[ $("$M/app/run.sh" direct) == 'script ran with direct' ]] || fail "running the script directly"
[[ $("$M/bin/run" linked) == 'script ran with linked' ]] || fail "running the script through a link"
mv "$M/bin/run" "$M/bin/run2" && [[ $(readlink "$M/bin/run2") == ../app/run.sh ]] ||
    fail "rename of a link"
rm "$M/bin/run2" && [[ -f "$M/app/run.sh" ]] || fail "rm of a link removed its target"
expect_status 1 ln -s "$(printf 'x%.0s' {1..1025})" "$M/toolong"
expect_err 'too long'
mnt_stop "$M"
fsck_clean "$IMG" "$KEY"

note "remount: links kept; the export is clean FAT with 1067-byte files"
mnt_start "$IMG" "$M" -o ro --key-file "$KEY"
[[ $(readlink "$M/bin/link-to-prog") == prog ]] || fail "link lost across a remount"
[[ $(cd "$M" && ./bin/link-to-prog again) == 'prog says again' ]] || fail "run after a remount"
mnt_stop "$M"
if command -v fsck.fat >/dev/null && command -v mdir >/dev/null; then
    expect_status 0 "$VHDTOOL" export --key-file "$KEY" "$IMG" "$T/vol.raw"
    fsck.fat -n "$T/vol.raw" >"$T/fsck.out" 2>&1 || { cat "$T/fsck.out"; fail "fsck.fat -n"; }
    MTOOLS_SKIP_CHECK=1 mdir -i "$T/vol.raw" ::/bin >"$T/mdir.out" || fail "mdir"
    grep -Eq '1067 .*link-to-prog$' "$T/mdir.out" || { cat "$T/mdir.out"; fail "mdir: link not a 1067-byte file"; }
else
    note "fsck.fat/mdir not installed: the export check is skipped"
fi

note "fmask=0111: files not executable"
mnt_start "$IMG" "$M" -o fmask=0111 --key-file "$KEY"
[[ $(stat -c %a "$M/bin/prog") == 666 ]] || fail "fmask=0111 shows $(stat -c %a "$M/bin/prog")"
[[ $(stat -c %a "$M/bin") == 755 ]] || fail "fmask changed a directory: $(stat -c %a "$M/bin")"
expect_status 126 sh -c "cd '$M' && exec ./bin/link-to-prog"
expect_err 'Permission denied'
# vfat: bits the mask hides are ignored, so chmod +x succeeds and changes nothing.
chmod +x "$M/bin/prog" || fail "chmod +x under fmask=0111"
[[ ! -x "$M/bin/prog" ]] || fail "chmod +x made a file executable under fmask=0111"
expect_status 1 chown nobody "$M/bin/prog"
expect_err 'not permitted'
expect_status 1 chmod u+s "$M/bin/prog"
expect_err 'not permitted'
mnt_stop "$M"

note "quiet: chmod and chown succeed without effect"
mnt_start "$IMG" "$M" -o quiet,uid=4242,gid=4343 --key-file "$KEY"
[[ $(stat -c '%u %g %a' "$M/bin/prog") == '4242 4343 755' ]] ||
    fail "uid=/gid=: $(stat -c '%u %g %a' "$M/bin/prog")"
chmod 600 "$M/bin/prog" || fail "chmod 600 with quiet"
chown nobody "$M/bin/prog" || fail "chown with quiet"
chmod u+s "$M/bin/prog" || fail "chmod u+s with quiet"
[[ $(stat -c '%u %a' "$M/bin/prog") == '4242 755' ]] || fail "quiet changed something"
mnt_stop "$M"

note "umask=077, showexec; the read-only attribute through chmod"
mnt_start "$IMG" "$M" -o umask=077,showexec --key-file "$KEY"
cp "$T/prog" "$M/bin/PROG.EXE"
: >"$M/bin/x.bat"
[[ $(stat -c %a "$M/bin") == 700 ]] || fail "umask=077 directory: $(stat -c %a "$M/bin")"
[[ $(stat -c %a "$M/bin/prog") == 600 ]] || fail "showexec: prog is $(stat -c %a "$M/bin/prog")"
[[ $(stat -c %a "$M/bin/PROG.EXE") == 700 && $(stat -c %a "$M/bin/x.bat") == 700 ]] ||
    fail "showexec: .EXE/.bat not executable"
[[ $("$M/bin/PROG.EXE" exe) == 'prog says exe' ]] || fail "running PROG.EXE under showexec"
expect_status 126 sh -c "exec '$M/bin/prog'"
chmod +x "$M/bin/prog" || fail "chmod +x (ignored by vfat, no error)"
[[ $(stat -c %a "$M/bin/prog") == 600 ]] || fail "chmod +x changed a showexec mode"
chmod a-w "$M/bin/prog" && [[ $(stat -c %a "$M/bin/prog") == 400 ]] ||
    fail "chmod a-w: $(stat -c %a "$M/bin/prog")"
chmod u+w "$M/bin/prog" && [[ $(stat -c %a "$M/bin/prog") == 600 ]] ||
    fail "chmod u+w: $(stat -c %a "$M/bin/prog")"
mnt_stop "$M"
fsck_clean "$IMG" "$KEY"

note "bad option values are usage errors"
expect_status 2 "$VHDMOUNT" -f -o umask=999 --key-file "$KEY" "$IMG" "$M"
expect_err 'umask=999'
expect_status 2 "$VHDMOUNT" -f -o uid=me --key-file "$KEY" "$IMG" "$M"
expect_err 'uid=me'
echo "PASS"
