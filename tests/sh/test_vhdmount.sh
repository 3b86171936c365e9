#!/bin/bash
# vhdmount through the kernel: a varied tree copied in with cp -a and
# compared with diff -r, across an unmount, vhdfsck and a remount; the
# rename/truncate/unlink corner cases; two writers at once; the seeded
# random-operation checker vdfsx. Skips (77, with the reason) where FUSE
# cannot mount.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vhdmount_lib.sh"
fuse_need
need "$VDFSX" "$VDRENAME" diff cmp truncate python3
umask 022

image_new 96M

# ---- a varied tree ---------------------------------------------------------
S=$T/src
mkdir -p "$S/a/b/c/d/e" "$S/empty dir" "$S/Ünïcödé" "$S/日本語"
: >"$S/empty"
printf 'small\n' >"$S/a/b/c/d/e/deep.txt"
head -c 3145728 /dev/urandom >"$S/random.bin"        # 3 MiB
head -c 4097 /dev/urandom >"$S/a/one-past-a-block"
printf 'grüße\n' >"$S/Ünïcödé/Grüße.txt"
printf 'こんにちは\n' >"$S/日本語/ファイル名.txt"
printf 'party\n' >"$S/emoji 🎉 file.txt"
LONG=$(printf 'long-name-%.0s' {1..20})x.txt        # 205 characters
printf 'long\n' >"$S/$LONG"
printf 'spaces\n' >"$S/name with  spaces.and.dots.txt"
for i in $(seq 1 40); do printf 'file %d\n' "$i" >"$S/a/b/f$i"; done
touch -d '2001-02-03 04:05:06' "$S/a/b/f1"

note "mount, cp -a, diff -r"
mnt_start "$IMG" "$M" --key-file "$KEY"
cp -a "$S/." "$M/" || fail "cp -a into the mount"
diff -r "$S" "$M" || fail "diff -r after cp -a"
[[ $(stat -c %Y "$M/a/b/f1") == $(stat -c %Y "$S/a/b/f1") ]] || fail "mtime not kept by cp -a"
mnt_stop "$M"
image_unlocked "$IMG" || fail "image still locked after the daemon exited"
fsck_clean "$IMG" "$KEY"

note "remount, diff -r again"
mnt_start "$IMG" "$M" --key-file "$KEY"
diff -r "$S" "$M" || fail "diff -r after remount"
# As root, the first open widened the mount's read-ahead window to 1 MiB
# (vhdmount(8), CONCURRENCY AND CACHING).
if [[ $(id -u) == 0 ]]; then
    ra=$(cat "/sys/class/bdi/$(mountpoint -d "$M")/read_ahead_kb")
    [[ $ra -ge 1024 ]] || fail "read_ahead_kb of the mount is $ra, want >= 1024"
else
    note "not root: the read-ahead window is left alone, not checked"
fi

# ---- names, renames, truncation, removal ------------------------------------
note "corner cases"
cd "$M"
printf 'A\n' >x; printf 'B\n' >y
mv -f y x && [[ $(cat x) == B && ! -e y ]] || fail "rename over an existing file"
mkdir d1 d1/sub
[[ $("$VDRENAME" d1 d1/sub/inner) == EINVAL ]] || fail "rename of a directory into itself is not EINVAL"
printf 'C\n' >z
[[ $("$VDRENAME" --noreplace z x) == EEXIST ]] || fail "RENAME_NOREPLACE over a file is not EEXIST"
[[ $(cat x) == B && $(cat z) == C ]] || fail "a refused rename changed something"
[[ $("$VDRENAME" --noreplace z w) == ok && $(cat w) == C && ! -e z ]] || fail "RENAME_NOREPLACE to a free name"
[[ $("$VDRENAME" --exchange x w) == EINVAL ]] || fail "RENAME_EXCHANGE is not EINVAL (as vfat)"
mv d1 d2 && [[ -d d2/sub && ! -e d1 ]] || fail "rename of a directory"
mv w d2/sub/moved && [[ $(cat d2/sub/moved) == C ]] || fail "rename into another directory"
# Names match case-insensitively. The kernel caches each spelling's entry
# on its own (up to entry_timeout), so the listing, not a lookup of "x",
# says whether x is gone (vhdmount(8), BUGS).
mv X renamed-case
[[ -e renamed-case ]] && ! ls | grep -qx x || fail "case-insensitive name lookup in rename"

head -c 10000 /dev/urandom >"$T/t.ref"
cp "$T/t.ref" t
truncate -s 1000000 t; truncate -s 1000000 "$T/t.ref"
cmp t "$T/t.ref" || fail "truncate to grow"
truncate -s 10 t; truncate -s 10 "$T/t.ref"
cmp t "$T/t.ref" || fail "truncate to shrink"
[[ $(stat -c %s t) == 10 ]] || fail "size after truncate"

# POSIX: the name goes at once, an open descriptor keeps the contents.
printf '0123456789' >t # text: bash's read drops NULs and stops at newlines
exec 9<t
rm t || fail "unlink of an open file"
[[ ! -e t ]] || fail "unlinked file still there"
# (bash's read: no fstat, which libfuse's high-level API answers ESTALE
# for a file it can no longer name; see vhdmount(8) BUGS)
IFS= read -r -n 10 line <&9 || true
[[ $line == 0123456789 ]] || fail "an unlinked open file no longer reads"
exec 9<&-

printf 'D\n' >o1; printf 'E\n' >o2
exec 9<o2
[[ $("$VDRENAME" o1 o2) == ok && $(cat o2) == D ]] || fail "rename over an open file"
IFS= read -r line <&9 || true
[[ $line == E ]] || fail "the replaced file's open descriptor lost its contents"
exec 9<&-

expect_status 1 rmdir d2
expect_err 'not empty'
rm -r d2 && [[ ! -e d2 ]] || fail "rm -r"

expect_status 1 touch "$M/a:b"
expect_err 'Invalid argument'
expect_status 1 touch "$M/$(printf 'n%.0s' {1..256})"
expect_err 'too long'
[[ $("$VDRENAME" "$M/renamed-case" "$M/$(printf 'n%.0s' {1..256})") == 'File name too long' ]] ||
    fail "rename to a 256-unit name is not ENAMETOOLONG"
[[ $("$VDRENAME" "$M/renamed-case" "$M/a?b") == EINVAL ]] || fail "rename to a name FAT cannot store"
ln -s x "$M/sym" || fail "ln -s in the mount"
[[ $(readlink "$M/sym") == x && $(stat -c %F "$M/sym") == 'symbolic link' ]] ||
    fail "readlink/lstat of a new link"
rm "$M/sym"
expect_status 1 ln "$M/renamed-case" "$M/hard"
expect_err 'not permitted'
# Extended attributes: ENOTSUP every time, as on vfat (the first answer
# tells the kernel to stop asking; later ones are the kernel's).
for try in 1 2; do
    python3 - "$M/renamed-case" <<'PY' || fail "xattr calls, round $try"
import errno, os, sys
p = sys.argv[1]
for name, call in [("getxattr", lambda: os.getxattr(p, "user.x")),
                   ("listxattr", lambda: os.listxattr(p)),
                   ("setxattr", lambda: os.setxattr(p, "user.x", b"1")),
                   ("removexattr", lambda: os.removexattr(p, "user.x"))]:
    try:
        call()
        sys.exit(name + " succeeded")
    except OSError as e:
        if e.errno != errno.ENOTSUP:
            sys.exit("%s: %s, not ENOTSUP" % (name, e))
PY
done
# Modes as vfat (umask 022: files rwxr-xr-x; test_vhdmount_links.sh has
# the options): a mode FAT can hold is kept, one it cannot is ignored
# without an error, set-id bits and other owners are EPERM.
chmod 0755 "$M/renamed-case" || fail "chmod to the shown mode"
chmod 0600 "$M/renamed-case" || fail "chmod 0600 (ignored, as on vfat)"
[[ $(stat -c %a "$M/renamed-case") == 755 ]] || fail "chmod 0600 changed the mode"
chmod a-w "$M/renamed-case" && [[ $(stat -c %a "$M/renamed-case") == 555 ]] ||
    fail "chmod a-w does not set the read-only attribute"
chmod u+w "$M/renamed-case" && [[ $(stat -c %a "$M/renamed-case") == 755 ]] ||
    fail "chmod u+w does not clear the read-only attribute"
expect_status 1 chmod u+s "$M/renamed-case"
expect_err 'not permitted'
expect_status 1 chown nobody "$M/renamed-case"
expect_err 'not permitted'
cd "$T"

# ---- two writers at once ----------------------------------------------------
note "two processes writing different files at once"
head -c 6291456 /dev/urandom >"$T/r1"
head -c 6291456 /dev/urandom >"$T/r2"
dd if="$T/r1" of="$M/p1" bs=4096 status=none &
w1=$!
dd if="$T/r2" of="$M/p2" bs=65536 status=none &
w2=$!
wait $w1 || fail "writer 1"
wait $w2 || fail "writer 2"
cmp "$T/r1" "$M/p1" || fail "writer 1's file differs"
cmp "$T/r2" "$M/p2" || fail "writer 2's file differs"

# ---- random operations against a model --------------------------------------
# Two checkers at once, each against its own model, so requests from
# several FUSE threads interleave; each prints its seed (replay with
# VDFSX_SEED / VDFSX_SEED2).
note "vdfsx, two at once"
mkdir "$M/fsx1" "$M/fsx2"
"$VDFSX" --ops 3000 --files 4 --max-size 1048576 --seed "${VDFSX_SEED:-$RANDOM$RANDOM}" "$M/fsx1" &
x1=$!
"$VDFSX" --ops 3000 --files 3 --max-size 2097152 --seed "${VDFSX_SEED2:-$RANDOM$RANDOM}" "$M/fsx2" &
x2=$!
wait $x1 || fail "vdfsx (1) through the mount"
wait $x2 || fail "vdfsx (2) through the mount"
mkdir "$T/fsx"
cp -r "$M/fsx1" "$M/fsx2" "$T/fsx/"   # checked against the models: kept for after the remount

# ---- an application: sqlite3 with a DELETE journal ----------------------------
# At every commit sqlite closes its journal and unlinks it at once; FUSE
# does not wait for the release of a close, so the unlink can arrive first
# (the library refuses to unlink an open file): vhdmount must wait for it.
if command -v sqlite3 >/dev/null 2>&1; then
    note "sqlite3 inside the mount (DELETE journal, synchronous=FULL)"
    {
        echo "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL;"
        echo "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);"
        for i in $(seq 1 150); do
            echo "BEGIN; INSERT INTO t(v) VALUES('row $i'); UPDATE t SET v = v || '!' WHERE k = $(((i + 1) / 2)); COMMIT;"
        done
        echo "SELECT count(*) FROM t; PRAGMA integrity_check;"
    } >"$T/app.sql"
    sqlite3 -batch -bail "$M/app.db" <"$T/app.sql" >"$T/sql.out" 2>"$T/sql.err" ||
        { cat "$T/sql.err" >&2; fail "sqlite3 failed inside the mount"; }
    [[ "$(tail -2 "$T/sql.out" | tr '\n' ' ')" == "150 ok " ]] ||
        { cat "$T/sql.out" "$T/sql.err" >&2; fail "sqlite3 results inside the mount"; }
    [[ ! -e "$M/app.db-journal" ]] || fail "sqlite3's journal was left behind"
else
    note "sqlite3 not installed: the application check is skipped"
fi

mnt_stop "$M"
fsck_clean "$IMG" "$KEY"
note "remount: everything still there"
mnt_start "$IMG" "$M" --key-file "$KEY"
diff -r "$S/a" "$M/a" || fail "diff -r after the second remount"
cmp "$T/r1" "$M/p1" && cmp "$T/r2" "$M/p2" || fail "concurrent files after remount"
diff -r "$T/fsx/fsx1" "$M/fsx1" && diff -r "$T/fsx/fsx2" "$M/fsx2" || fail "vdfsx files after remount"
[[ $(cat "$M/renamed-case") == B ]] || fail "renamed file after remount"
if command -v sqlite3 >/dev/null 2>&1; then
    [[ "$(sqlite3 "$M/app.db" 'SELECT count(*) FROM t; PRAGMA integrity_check;' | tr '\n' ' ')" == "150 ok " ]] ||
        fail "the sqlite3 database after remount"
fi
mnt_stop "$M"
echo "PASS"
