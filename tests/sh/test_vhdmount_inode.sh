#!/bin/bash
# One FAT file is one kernel inode through vhdmount, whatever the
# spelling (issue 16): README.TXT and readme.txt, a long name and its 8.3
# alias show one st_ino, and with the page cache kept across opens and the
# writeback cache on, what is written through one name is read through the
# other at once, through a descriptor opened before the write, without a
# remount. Pages stay cached across opens (fincore). Renames keep the
# inode; unlink of an open file keeps its data and fstat. The same with
# -o nowriteback. vdfsx runs through the mount with the writeback cache on
# (as in test_vhdmount.sh, here with -d showing what INIT agreed on).
# Skips (77, with the reason) where FUSE cannot mount.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/vhdmount_lib.sh"
fuse_need
need "$VDFSX" stat cmp dd
umask 022

image_new 64M

ino() { stat -c %i "$1"; }

# spellings OPTIONS...: the checks, on a mount with those options.
spellings() {
    mnt_start "$IMG" "$M" --key-file "$KEY" "$@"
    rm -rf "$M/Dir"
    mkdir "$M/Dir"
    printf 'first contents\n' >"$M/Dir/README.TXT"
    [[ $(ino "$M/Dir/README.TXT") == $(ino "$M/dir/readme.txt") ]] ||
        fail "$*: README.TXT and readme.txt are inodes $(ino "$M/Dir/README.TXT") and $(ino "$M/dir/readme.txt")"
    [[ $(ino "$M/Dir/README.TXT") == $(ino "$M/DIR/ReadMe.Txt") ]] || fail "$*: a third spelling is another inode"
    LONG="A long file name.txt"
    printf 'long\n' >"$M/Dir/$LONG"
    [[ $(ino "$M/Dir/$LONG") == $(ino "$M/Dir/ALONGF~1.TXT") ]] ||
        fail "$*: the long name and its 8.3 alias are two inodes"
    [[ $(ino "$M/Dir/$LONG") != $(ino "$M/Dir/README.TXT") ]] || fail "$*: two files share an inode"

    # A reader opened through one spelling, a write through another: the
    # reader sees the new bytes at once (one inode, one page cache).
    exec 8<"$M/dir/readme.txt"
    printf 'SECOND contents\n' | dd of="$M/Dir/README.TXT" conv=notrunc status=none ||
        fail "$*: write through README.TXT"
    got=$(head -c 16 <&8)
    exec 8<&-
    [[ $got == 'SECOND contents' ]] || fail "$*: read through readme.txt after the write: '$got'"
    [[ $(cat "$M/DIR/README.txt") == 'SECOND contents' ]] || fail "$*: a third spelling reads other contents"
    # Appends through two spellings land one after the other.
    printf 'a1\n' >>"$M/Dir/ALONGF~1.TXT"
    printf 'a2\n' >>"$M/Dir/$LONG"
    [[ $(cat "$M/dir/alongf~1.txt") == $'long\na1\na2' ]] || fail "$*: appends through two spellings"

    # The page cache is kept across opens: a file read once stays resident
    # when opened again (fincore opens it itself).
    if command -v fincore >/dev/null 2>&1; then
        head -c 1048576 /dev/urandom >"$T/big"
        cp "$T/big" "$M/Dir/big.bin"
        cat "$M/Dir/big.bin" >/dev/null
        res=$(fincore -b -n -o RES "$M/DIR/BIG.BIN")
        [[ $res -ge 524288 ]] || fail "$*: only $res bytes of a 1 MiB file stay cached across opens"
        cmp "$T/big" "$M/dir/big.bin" || fail "$*: big.bin differs"
    else
        note "fincore (util-linux-extra) not installed: the kept page cache is not checked"
    fi

    # A rename keeps the inode; the old spellings go.
    i=$(ino "$M/Dir/README.TXT")
    mv "$M/dir/readme.txt" "$M/Dir/renamed.txt" || fail "$*: rename through another spelling"
    [[ $(ino "$M/Dir/RENAMED.TXT") == "$i" ]] || fail "$*: the renamed file has another inode"
    ls "$M/Dir" | grep -qix readme.txt && fail "$*: README.TXT still listed after the rename"
    mv "$M/Dir" "$M/Moved" || fail "$*: rename of the directory"
    [[ $(ino "$M/moved/Renamed.txt") == "$i" && $(cat "$M/MOVED/renamed.txt") == 'SECOND contents' ]] ||
        fail "$*: a file under a renamed directory"

    # Unlinked while open: the descriptor keeps the contents and fstat
    # answers (the inode lives on without a name).
    printf 'orphan data' >"$M/orphan"
    exec 9<>"$M/orphan"
    rm "$M/ORPHAN" || fail "$*: unlink of an open file"
    # The listing and a spelling never looked up say it is gone at once;
    # the kernel's own dentry of another spelling goes when vhdmount's
    # invalidation reaches it, just after the unlink (vhdmount(8), BUGS).
    ls "$M" | grep -qix orphan && fail "$*: an unlinked file is still listed"
    [[ ! -e "$M/Orphan" ]] || fail "$*: an unlinked file is still there"
    [[ $(stat -L -c %s /dev/fd/9) == 11 ]] || fail "$*: fstat of an unlinked open file"
    got=$(head -c 11 <&9)
    exec 9<&-
    [[ $got == 'orphan data' ]] || fail "$*: an unlinked open file reads '$got'"
    # A new file in the freed slot is a new inode with its own contents.
    printf 'new\n' >"$M/orphan2"
    [[ $(cat "$M/orphan2") == new ]] || fail "$*: a file after an unlink"
    mnt_stop "$M"
    fsck_clean "$IMG" "$KEY"
    mnt_start "$IMG" "$M" --key-file "$KEY" "$@"
    [[ $(cat "$M/Moved/renamed.txt") == 'SECOND contents' ]] || fail "$*: after a remount"
    [[ $(cat "$M/moved/a long file name.txt") == $'long\na1\na2' ]] || fail "$*: appends after a remount"
    rm -rf "$M/Moved" "$M/orphan2"
    mnt_stop "$M"
}

note "two spellings, one inode: the writeback cache on (the default)"
spellings
note "the same with -o nowriteback"
spellings -o nowriteback

note "INIT: the writeback cache is on by default, off with nowriteback or ro"
mnt_start "$IMG" "$M" --key-file "$KEY" -d
mnt_stop "$M"
grep -q 'writeback cache on' "$T/vhdmount.log" || fail "-d does not show the writeback cache on"
mnt_start "$IMG" "$M" --key-file "$KEY" -d -o nowriteback
mnt_stop "$M"
grep -q 'writeback cache off' "$T/vhdmount.log" || fail "-o nowriteback left the writeback cache on"

note "vdfsx through the mount with the writeback cache on"
mnt_start "$IMG" "$M" --key-file "$KEY"
mkdir "$M/fsx"
"$VDFSX" --ops 3000 --files 4 --max-size 1048576 --seed "${VDFSX_SEED:-$RANDOM$RANDOM}" "$M/fsx" ||
    fail "vdfsx through the mount (writeback cache on)"
mkdir "$T/fsx"
cp -r "$M/fsx" "$T/"
mnt_stop "$M"
fsck_clean "$IMG" "$KEY"
mnt_start "$IMG" "$M" --key-file "$KEY"
diff -r "$T/fsx" "$M/fsx" || fail "vdfsx files after a remount"
mnt_stop "$M"
echo "PASS"
