#!/bin/bash
# nbdkit-vdisk-plugin end to end (docs/man/nbdkit-vdisk-plugin.1): the
# plaintext volume of an image served by nbdkit on a Unix socket and used by
# real NBD clients (nbdcopy, qemu-img, qemu-io, nbdinfo). What the clients
# read is checked against the source tree with fsck.fat and mtools; what they
# write is checked through vhdtool (verified reads) and byte-exact against an
# expected raw volume built with dd, never against the plugin itself.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nbd_lib.sh"
need nbdkit
PLUGIN=$VD_BUILD/nbdkit/nbdkit-vdisk-plugin.so
[[ -f "$PLUGIN" ]] || skip "$PLUGIN not built (needs nbdkit-plugin-dev)"
need "$MKVHD" "$VHDTOOL" "$VHDFSCK" nbdcopy nbdinfo qemu-img qemu-io fsck.fat mkfs.fat \
    mcopy flock
export TZ=UTC MTOOLS_SKIP_CHECK=1
mkdir "$T/w" && cd "$T/w" || exit 1

# A sanitizer build's plugin needs its runtime preloaded into nbdkit, and
# nbdkit 1.32 with libasan preloaded hangs in exit() after any error message
# carrying an errno text, even with its own file plugin (`nbdkit file
# /nonexistent`: glibc's locale lock, in libp11-kit's destructor). The
# plugin's code runs here in the plain build.
# (ldd's output is captured first: under pipefail, `ldd | grep -q` fails
# when grep quits early and ldd dies of SIGPIPE, and the skip was missed.)
deps=$(ldd "$PLUGIN" 2>/dev/null || true)
if [[ $deps == *libasan* || $deps == *libtsan* ]]; then
    skip "sanitizer build: nbdkit cannot run an instrumented plugin (hangs at exit under a preloaded libasan)"
fi
NBDKIT=(nbdkit)

SOCK=$T/nbd.sock
URI="nbd+unix:///?socket=$SOCK"
SPID=
at_exit '[[ -z "$SPID" ]] || kill -KILL "$SPID" 2>/dev/null'

# srv_start PLUGIN-ARGS...: nbdkit in the foreground, stderr to
# $T/nbdkit.log; returns once it accepts connections (nbd_ready).
srv_start() {
    rm -f "$SOCK" "$T/srv.pid"
    "${NBDKIT[@]}" -f --exit-with-parent -U "$SOCK" -P "$T/srv.pid" "$PLUGIN" "$@" \
        2>"$T/nbdkit.log" </dev/null &
    SPID=$!
    nbd_ready "$T/srv.pid" "$SPID" "$T/nbdkit.log"
}
# srv_stop: SIGTERM, and nbdkit must exit 0 with no error logged.
srv_stop() {
    local rc=0
    kill -TERM "$SPID"
    wait "$SPID" || rc=$?
    SPID=
    [[ $rc == 0 ]] || { cat "$T/nbdkit.log" >&2; fail "nbdkit exited $rc after SIGTERM"; }
    ! grep -q 'error' "$T/nbdkit.log" || { cat "$T/nbdkit.log" >&2; fail "nbdkit logged an error"; }
}
# wait_gone PID: until a process that is not our child has exited.
wait_gone() {
    local i
    for ((i = 0; i < 1200; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.05
    done
    fail "process $1 still running after 60 s"
}
# fsck_clean IMAGE: verified end to end, nothing to fix, and no interrupted
# sync found (the image was closed cleanly).
fsck_clean() {
    expect_status 0 "$VHDFSCK" -n -v --key-file key --anchor anc "$1"
    expect_out 'clean'
    ! grep -q 'recovered' "$T/out" || { cat "$T/out" >&2; fail "$1 was not closed cleanly"; }
}
# pattern BYTE LEN FILE: LEN bytes of BYTE (octal escape for tr, e.g. 245).
pattern() { head -c "$2" /dev/zero | tr '\0' "\\$1" >"$3"; }
# patch FILE OFFSET SRC: SRC's bytes over FILE at OFFSET, in place.
patch() { dd if="$3" of="$1" bs=1 seek="$2" conv=notrunc status=none; }

note "help and --dump-plugin"
expect_status 0 "${NBDKIT[@]}" "$PLUGIN" --help
expect_out '^image=IMAGE'
expect_out '^key-file=FILE'
expect_out '^passphrase-file=FILE'
expect_out '^identity=FILE'
expect_out '^anchor=FILE'
expect_out '^cache-mb=N'
expect_out '^readonly=BOOL'
expect_status 0 "${NBDKIT[@]}" "$PLUGIN" --dump-plugin
expect_out '^name=vdisk$'
expect_out '^max_thread_model=parallel$'
# Lowered to one request per connection where nbdkit has the hang-up bug
# (plugin.c, vdp_thread_model); the EIO case below shows the server survives.
expect_out '^thread_model=(parallel|serialize_requests)$'
expect_out '^magic_config_key=image$'
expect_out '^has_after_fork=1$'
expect_out '^has_cleanup=1$'

note "an image from a tree"
mkdir -p src/d1/d2 src/d3 src2/sub
printf 'hello\n' >src/hello.txt
head -c 300000 /dev/urandom >src/d1/rand.bin
printf 'deep\n' >"src/d1/d2/Ünïcödé façade.txt"
: >src/d3/empty
# Distinct text lines, so one of its blocks can be found in the raw volume.
for i in $(seq 1 3000); do printf 'marker line %06d ..........................\n' "$i"; done \
    >src/marked.txt
head -c 1000000 /dev/urandom >src2/sub/other.bin
printf 'second tree\n' >src2/readme.txt
expect_status 0 "$MKVHD" -q --new-key-file key --anchor anc img.vhd src
expect_status 0 "$VHDTOOL" info --json img.vhd
nblocks=$(sed -nE 's/.*"nblocks": ([0-9]+),.*/\1/p' "$T/out")
data_start=$(sed -nE 's/.*"data_start": ([0-9]+),.*/\1/p' "$T/out")
[[ -n "$nblocks" && -n "$data_start" ]] || fail "no nblocks/data_start in vhdtool info --json"
size=$((nblocks * 4096))

# ---- reading -----------------------------------------------------------------
note "nbdinfo: size and the flags the plugin answers"
srv_start img.vhd key-file=key anchor=anc
expect_status 0 nbdinfo --json "$URI"
grep -Eq "\"export-size\": $size," "$T/out" || { cat "$T/out" >&2; fail "export size is not $size"; }
for f in '"can_multi_conn": true' '"can_flush": true' '"can_fua": true' \
    '"can_trim": false' '"is_read_only": false' '"block_size_preferred": 4096'; do
    grep -Fq "$f" "$T/out" || { cat "$T/out" >&2; fail "nbdinfo lacks $f"; }
done

note "nbdcopy and qemu-img convert of the export: fsck.fat clean, mcopy = the tree"
expect_status 0 nbdcopy "$URI" raw.img
[[ $(stat -c %s raw.img) == "$size" ]] || fail "raw.img is not $size bytes"
expect_status 0 fsck.fat -n raw.img
mkdir out && expect_status 0 mcopy -s -i raw.img '::/*' out/
diff -r src out || fail "the tree read through nbdcopy differs from the source"
expect_status 0 qemu-img convert -f raw -O raw "$URI" raw-qemu.img
cmp raw.img raw-qemu.img || fail "qemu-img and nbdcopy read different volumes"
srv_stop
fsck_clean img.vhd
cp img.vhd bad.vhd && cp anc bad.anc # for the integrity checks below

# ---- writing -----------------------------------------------------------------
note "qemu-io writes (whole blocks, partial blocks, FUA) read back by vhdtool"
cp img.vhd img-before.vhd
off1=$((size - 1048576 + 1000)) len1=70000 # partial blocks at both ends
off2=$((size - 262144 + 512)) len2=512     # inside one block
off3=$((size - 131072)) len3=8192          # whole blocks, with FUA
srv_start img.vhd key-file=key anchor=anc
expect_status 0 qemu-io -f raw -c "write -P 0xa5 $off1 $len1" -c "write -P 0x5a $off2 $len2" \
    -c "write -f -P 0x3c $off3 $len3" "$URI"
expect_status 0 qemu-io -f raw -c "read -P 0xa5 $off1 $len1" -c "read -P 0x5a $off2 $len2" \
    -c "read -P 0x3c $off3 $len3" "$URI"
srv_stop
fsck_clean img.vhd
cp raw.img expect.img
pattern 245 $len1 p1 && patch expect.img $off1 p1
pattern 132 $len2 p2 && patch expect.img $off2 p2
pattern 074 $len3 p3 && patch expect.img $off3 p3
expect_status 0 "$VHDTOOL" export -q --key-file key --anchor anc img.vhd raw2.img
cmp expect.img raw2.img || fail "vhdtool's verified export differs from the writes"

note "after a restart the plugin reads the same bytes"
srv_start img.vhd key-file=key anchor=anc
expect_status 0 nbdcopy "$URI" raw3.img
cmp expect.img raw3.img || fail "the export after a restart differs"
srv_stop

note "the anchor advanced at the writes' commits: the copy from before is a rollback"
cp img.vhd img-after.vhd
cp img-before.vhd img.vhd
rm -f "$SOCK"
expect_status 1 "${NBDKIT[@]}" -f -U "$SOCK" "$PLUGIN" img.vhd key-file=key anchor=anc
expect_err 'img\.vhd: image is older than its freshness anchor'
[[ ! -S "$SOCK" ]] || fail "nbdkit listened on a rolled-back image"
cp img-after.vhd img.vhd

note "FUA is durable on its own: a FUA write survives SIGKILL"
off4=$((size - 65536)) len4=4096
srv_start img.vhd key-file=key anchor=anc
# qemu-io's "abort" ends it before it can flush at close: only FUA commits.
expect_status 134 qemu-io -f raw -c "write -f -P 0x77 $off4 $len4" -c abort "$URI"
kill -KILL "$SPID"
wait "$SPID" || true
SPID=
pattern 167 $len4 p4 && patch expect.img $off4 p4
expect_status 0 "$VHDTOOL" export -q --force --key-file key --anchor anc img.vhd raw2.img
cmp expect.img raw2.img || fail "the FUA write was lost at SIGKILL"

note "nbdcopy writes a whole FAT32 volume (mkfs.fat + mcopy) without a flush"
expect_status 0 mkfs.fat -F 32 -C vol.img $((size / 1024))
expect_status 0 mcopy -s -i vol.img src2/sub src2/readme.txt ::/
srv_start img.vhd key-file=key anchor=anc
expect_status 0 nbdcopy vol.img "$URI" # no --flush: the clean exit must sync
srv_stop
fsck_clean img.vhd
mkdir out2 && expect_status 0 "$VHDTOOL" get -q --key-file key --anchor anc img.vhd / out2
diff -r src2 out2 || fail "vhdtool reads a different tree than nbdcopy wrote"
expect_status 0 "$VHDTOOL" export -q --force --key-file key --anchor anc img.vhd raw2.img
cmp vol.img raw2.img || fail "the volume in the image is not the one written"
cp vol.img expect.img

# ---- integrity ---------------------------------------------------------------
note "a flipped bit under a running plugin: the client gets EIO, not data"
off=$(grep -obUa 'marker line 001500' raw.img | head -1 | cut -d: -f1)
[[ -n "$off" ]] || fail "marker not found in the export"
lbn=$((off / 4096))
srv_start bad.vhd key-file=key anchor=bad.anc cache-mb=1
flip_byte bad.vhd $(((data_start + lbn) * 4096 + 7)) 0xff
expect_status 1 nbdcopy "$URI" bad.img
expect_err 'Input/output error'
note "nbdcopy printed: $(head -c 300 "$T/err" | tr '\n' ' ')"
kill -0 "$SPID" || { cat "$T/nbdkit.log" >&2; fail "nbdkit died when nbdcopy hung up"; }
grep -q "integrity failure in logical block $lbn " "$T/nbdkit.log" ||
    { cat "$T/nbdkit.log" >&2; fail "no log line naming logical block $lbn"; }
expect_status 1 qemu-img convert -f raw -O raw "$URI" bad-qemu.img
expect_err 'Input/output error'
note "qemu-img printed: $(head -c 300 "$T/err" | tr '\n' ' ')"
expect_status 1 qemu-io -f raw -c "read -v $((lbn * 4096)) 4096" "$URI"
grep -Eq '^[0-9a-f]{8}:' "$T/out" && fail "qemu-io printed bytes of the tampered block"
expect_out '^read failed: Input/output error$'
# Every integrity line names that block; the server still serves the rest.
! grep 'integrity failure' "$T/nbdkit.log" | grep -vq "logical block $lbn " ||
    { cat "$T/nbdkit.log" >&2; fail "an integrity failure logged for another block"; }
expect_status 0 qemu-io -f raw -c "read -v $(((lbn + 1) * 4096)) 4096" "$URI"
expect_out 'marker\.line' # qemu-io's dump shows the space as "."
expect_out "^read 4096/4096 bytes at offset $(((lbn + 1) * 4096))$"
kill -TERM "$SPID" && wait "$SPID" || fail "nbdkit after the integrity failure"
SPID=

# ---- refusals ----------------------------------------------------------------
note "wrong key, no key, missing image, locked image: nbdkit does not start"
head -c 32 /dev/urandom >key2
rm -f "$SOCK"
expect_status 1 "${NBDKIT[@]}" -f -U "$SOCK" "$PLUGIN" img.vhd key-file=key2 anchor=anc
expect_err 'img\.vhd: wrong key for this image \(no key slot opens with this key file\)'
printf 'not it\n' >wrong.pw
expect_status 1 "${NBDKIT[@]}" -f -U "$SOCK" "$PLUGIN" img.vhd passphrase-file=wrong.pw anchor=anc
expect_err 'img\.vhd: wrong key .*passphrase'
# Daemonizing: the key is checked before the fork, so the start fails too.
expect_status 1 "${NBDKIT[@]}" -U "$SOCK" -P "$T/pid" "$PLUGIN" img.vhd key-file=key2 anchor=anc
expect_err 'wrong key'
[[ ! -e "$T/pid" ]] || fail "a daemon started with the wrong key"
expect_status 1 "${NBDKIT[@]}" -f -U "$SOCK" "$PLUGIN" img.vhd anchor=anc
expect_err 'give exactly one of key-file=, passphrase-file=, identity='
expect_status 1 "${NBDKIT[@]}" -f -U "$SOCK" "$PLUGIN" img.vhd key-file=key passphrase-file=wrong.pw
expect_err 'give exactly one of'
expect_status 1 "${NBDKIT[@]}" -f -U "$SOCK" "$PLUGIN" img.vhd password=secret
expect_err 'never taken from the command line'
expect_status 1 "${NBDKIT[@]}" -f -U "$SOCK" "$PLUGIN" nothere.vhd key-file=key
expect_err 'nothere\.vhd: No such file'
expect_status 1 "${NBDKIT[@]}" -f -U "$SOCK" "$PLUGIN" img.vhd key-file=nothere.key
expect_err 'nothere\.key: No such file'
expect_status 1 "${NBDKIT[@]}" -f -U "$SOCK" "$PLUGIN" img.vhd key-file=key anchor=nothere.anc
expect_err 'nothere\.anc: anchor file not found'
expect_status 1 "${NBDKIT[@]}" -f -U "$SOCK" "$PLUGIN" img.vhd key-file=key anchor=tpm:0x01500020
expect_err 'anchor=tpm:0x01500020: TPM anchors are not supported'
expect_status 1 "${NBDKIT[@]}" -f -U "$SOCK" "$PLUGIN" img.vhd key-file=key cache-mb=0
expect_err 'cache-mb=0'
expect_status 1 flock -x img.vhd "${NBDKIT[@]}" -f -U "$SOCK" "$PLUGIN" img.vhd key-file=key anchor=anc
expect_err 'img\.vhd: .*another program has it open'
[[ ! -S "$SOCK" ]] || fail "nbdkit listened after a refused start"
expect_status 0 "$VHDFSCK" -n --key-file key --anchor anc img.vhd

note "readonly=1: writes refused, the image untouched, a second reader allowed"
sum=$(sha256sum <img.vhd)
srv_start img.vhd key-file=key anchor=anc readonly=1
expect_status 0 nbdinfo --json "$URI"
grep -Fq '"is_read_only": true' "$T/out" || { cat "$T/out" >&2; fail "not advertised read-only"; }
expect_status 1 nbdcopy vol.img "$URI"
note "nbdcopy onto the read-only export printed: $(head -c 200 "$T/err" | tr '\n' ' ')"
grep -Eqi 'read-only|Operation not permitted|EPERM|EROFS' "$T/err" ||
    { cat "$T/err" >&2; fail "the refused write does not say read-only / EPERM"; }
expect_status 0 "$VHDTOOL" cat -q --key-file key --anchor anc img.vhd /readme.txt
expect_out '^second tree$'
expect_status 0 nbdcopy "$URI" raw-ro.img
cmp raw-ro.img vol.img || fail "the read-only export differs"
srv_stop
[[ "$(sha256sum <img.vhd)" == "$sum" ]] || fail "readonly=1 changed the image"

# ---- process life ------------------------------------------------------------
note "daemonized (nbdkit forks; the image opens after the fork), stopped by SIGTERM"
rm -f "$SOCK" "$T/pid"
expect_status 0 "${NBDKIT[@]}" -U "$SOCK" -P "$T/pid" "$PLUGIN" img.vhd key-file=key \
    anchor=anc
# The parent exits once it has forked; the daemon writes the pid file
# when it accepts.
nbd_ready "$T/pid"
dpid=$(cat "$T/pid")
at_exit "kill -KILL $dpid 2>/dev/null"
expect_status 0 qemu-io -f raw -c "write -P 0x42 $off1 $len1" "$URI"
kill -TERM "$dpid"
wait_gone "$dpid"
fsck_clean img.vhd
pattern 102 $len1 p5 && patch expect.img $off1 p5
expect_status 0 "$VHDTOOL" export -q --force --key-file key --anchor anc img.vhd raw2.img
cmp expect.img raw2.img || fail "the daemon's write is not in the image"

note "--exit-with-parent: the parent exits, nbdkit syncs and closes"
pattern 333 $len2 p6 && patch expect.img $off2 p6
rm -f "$SOCK" "$T/pid"
(
    "${NBDKIT[@]}" -f --exit-with-parent -U "$SOCK" -P "$T/pid" "$PLUGIN" img.vhd \
        key-file=key anchor=anc 2>"$T/nbdkit.log" </dev/null &
    nbd_ready "$T/pid" "$!" "$T/nbdkit.log"
    nbdcopy expect.img "$URI" # no --flush
) || fail "the parent of nbdkit failed"
dpid=$(cat "$T/pid")
wait_gone "$dpid"
fsck_clean img.vhd
expect_status 0 "$VHDTOOL" export -q --force --key-file key --anchor anc img.vhd raw2.img
cmp expect.img raw2.img || fail "what nbdcopy wrote is not in the image after the parent exited"

# ---- an image on an NBD export --------------------------------------------------
expect_status 0 nbdkit "$PLUGIN" --dump-plugin
if grep -q '^vdisk_image_uri=yes$' "$T/out"; then
    note "image=URI: an image on an nbdkit memory export, served by the plugin"
    BURI=$(nbd_uri back)
    nbd_start back memory 64M </dev/null
    expect_status 0 "$MKVHD" -q --key-file key --anchor anc-nbd "$BURI" src
    srv_start "$BURI" key-file=key anchor=anc-nbd
    expect_status 0 nbdcopy "$URI" nbd.img
    expect_status 0 fsck.fat -n nbd.img
    mkdir out3 && expect_status 0 mcopy -s -i nbd.img '::/*' out3/
    diff -r src out3 || fail "the tree read through image=URI differs from the source"
    expect_status 0 qemu-io -f raw -c "write -P 0xa5 $off1 $len1" "$URI"
    srv_stop
    patch nbd.img $off1 p1
    expect_status 0 "$VHDTOOL" export -q --key-file key --anchor anc-nbd "$BURI" nbd2.img
    cmp nbd.img nbd2.img || fail "vhdtool reads other bytes than were written through image=URI"
    expect_status 0 "$VHDFSCK" -n -v --key-file key --anchor anc-nbd "$BURI"
    ! grep -q 'recovered' "$T/out" || fail "the image on the export was not closed cleanly"
    nbd_stop back
else
    note "built without NBD image support: image=URI not checked"
fi

note "ok"
