#!/usr/bin/env bash
# vhdbench --quick end to end (the issue's "once, to prove it works"; a
# few seconds in Debug, the later checks use --tiny): it runs every mode on both
# backends and a plain-directory peer (with the sqlite3 workload inside it
# when sqlite3 is installed), writes well-formed JSON and SVG, leaves
# nothing behind in --dir or the peer, and rejects bad options. No timing
# is asserted — only that every figure the report is built from exists
# and is positive.
. "$(dirname "$0")/lib.sh"

VHDBENCH=$VD_BUILD/bench/vhdbench
need "$VHDBENCH" python3

mkdir "$T/run" "$T/peer"
expect_status 0 "$VHDBENCH" --quick --reps 1 --dir "$T/run" \
    --peer "dir=$T/peer" --json "$T/out.json" --svg "$T/out.svg"
expect_out '^== seq-write'
expect_out '^== web-read'
expect_out 'rollback-detection overhead vs aead'
expect_out '^open 64 MiB'
expect_out '^== fsck-verify'
# The default warm-up: the sequential size (64 MiB with --quick) + 192 MiB.
expect_out '^memory touched and freed before each timed phase: 256 MiB$'
if command -v sqlite3 >/dev/null; then
    have_sqlite=1
    expect_out '^== sqlite'
else
    have_sqlite=0
    echo "sqlite3 not installed: the sqlite workload's figure is not checked"
    expect_out '^sqlite: not run \(no sqlite3\)'
fi

python3 -m json.tool "$T/out.json" >/dev/null || fail "JSON is not well-formed"
python3 - "$T/out.json" "$have_sqlite" <<'PY' || fail "JSON figures incomplete"
import json, sys
d = json.load(open(sys.argv[1]))
have_sqlite = sys.argv[2] == "1"
assert d["machine"]["cores"] >= 1 and d["machine"]["cpu"], d["machine"]
assert d["aes_ceiling_mb_s"] > 0
assert d["config"]["warm_bytes"] == (64 + 192) << 20, d["config"]
figs = {(f["workload"], f["subject"], f["backend"]): f for f in d["figures"]}
missing = []
for wl in ["seq-write", "seq-read", "rand-read", "rand-write", "oltp",
           "web-create", "web-read"]:
    for mode in ["plain", "checksum", "aead", "full", "full+anchor"]:
        for back in ["memory", "file"]:
            f = figs.get((wl, mode, back))
            if f is None or not (f["median"] > 0) or len(f["values"]) != 1:
                missing.append((wl, mode, back))
    f = figs.get((wl, "dir", "peer"))
    if f is None or not (f["median"] > 0) or f.get("ratio_plain") != 1:
        missing.append((wl, "dir", "peer"))
# vhdfsck's verification pass: image modes only.
for mode in ["full", "full+anchor"]:
    for back in ["memory", "file"]:
        f = figs.get(("fsck-verify", mode, back))
        if f is None or not (f["median"] > 0):
            missing.append(("fsck-verify", mode, back))
assert not [k for k in figs if k[0] == "fsck-verify"
            and k[1] not in ("full", "full+anchor")], figs.keys()
for name in ["aes-gcm-seal-openssl", "memcpy"]:
    if not figs.get(("ceiling", name, None), {}).get("median", 0) > 0:
        missing.append(("ceiling", name))
for what in ["open 64 MiB", "peak-rss 64 GiB", "tree-height 64 GiB"]:
    if not figs.get(("scale", what, "file"), {}).get("median", 0) > 0:
        missing.append(("scale", what))
# A bigger image must have a taller (or equal) tree.
assert figs[("scale", "tree-height 64 GiB", "file")]["median"] > \
       figs[("scale", "tree-height 64 MiB", "file")]["median"]
assert len(d["rollback_overhead_pct"]) == 14, d["rollback_overhead_pct"]
# sqlite runs in the peer only, never on a mode.
assert not [k for k in figs if k[0] == "sqlite" and k[2] != "peer"], figs.keys()
if have_sqlite:
    assert d["config"]["sqlite"]["rows"] > 0, d["config"]
    f = figs.get(("sqlite", "dir", "peer"))
    if f is None or not (f["median"] > 0) or f["unit"] != "txn/s" \
            or len(f["values"]) != 1 or f.get("ratio_plain") != 1:
        missing.append(("sqlite", "dir", "peer"))
else:
    assert d["config"]["sqlite"] is None
if missing:
    print("missing or non-positive:", missing, file=sys.stderr)
    sys.exit(1)
PY
python3 - "$T/out.svg" <<'PY' || fail "SVG is not a well-formed chart"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg", root.tag
rects = root.findall(ns + "rect")
# background + 4 legend swatches + at least one bar per workload
assert len(rects) >= 1 + 4 + 7, len(rects)
PY

# Scratch files (images, side tables, anchors, keys) are removed.
left=$(ls -A "$T/run" "$T/peer" | grep -v '^/\|^$' || true)
[[ -z "$left" ]] || fail "vhdbench left files in --dir: $left"

# Without sqlite3 in PATH the workload is skipped with its reason, and
# the rest still runs (rm is all the peer's cleanup needs).
mkdir "$T/bin" "$T/peer2"
ln -s "$(command -v rm)" "$T/bin/rm"
expect_status 0 env PATH="$T/bin" "$VHDBENCH" --tiny --reps 1 --no-scale --modes plain \
    --backends memory --dir "$T/run" --peer "dir=$T/peer2"
expect_err '^vhdbench: sqlite workload skipped: no sqlite3 in PATH'
expect_out '^sqlite: not run \(no sqlite3\)'
expect_out '^== oltp'
if grep -q '^== sqlite' "$T/out"; then fail "sqlite table without sqlite3"; fi
[[ -z "$(ls -A "$T/peer2" "$T/run" | grep -v '^/\|^$' || true)" ]] || fail "files left behind"
# And with no peer, it says so.
expect_status 0 "$VHDBENCH" --tiny --reps 1 --no-scale --modes plain --backends memory \
    --dir "$T/run"
expect_err '^vhdbench: sqlite workload skipped: no --peer'
expect_out '^sqlite: not run \(no peers\)'

# The weaker modes detect what they claim (and aead misses replay).
expect_status 0 "$VHDBENCH" --self-test
expect_out '^checksum: flipped byte detected: ok'
expect_out '^aead: moved block detected: ok'
expect_out '^aead: replayed old block accepted'
if grep -q FAILED "$T/out"; then cat "$T/out" >&2; fail "self-test check failed"; fi

expect_status 2 "$VHDBENCH" --modes nosuchmode
expect_err 'unknown or incomplete option'
expect_status 2 "$VHDBENCH" --reps 0
for bad in x 12x -1 2000000; do
    expect_status 2 "$VHDBENCH" --tiny --warm "$bad"
    expect_err 'unknown or incomplete option'
done
expect_status 0 "$VHDBENCH" --tiny --reps 1 --no-scale --modes plain --backends memory \
    --warm 8 --dir "$T/run"
expect_out '^memory touched and freed before each timed phase: 8 MiB$'
expect_status 1 "$VHDBENCH" --tiny --reps 1 --no-scale --backends file --dir "$T/nonexistent"
expect_err "^vhdbench: $T/nonexistent: No such file"
one_line_err

# vhdbench-mount (the "vhdmount-aead" peer of scripts/bench.sh): refused
# without aead:FILE, and where FUSE works it mounts a fresh volume that
# stores and returns data and removes its files at unmount. vhdmount
# itself links no benchmark code (issue 16): no bench_ symbol, no option.
VHDBENCH_MOUNT=$VD_BUILD/bench/vhdbench-mount
# daemon_ended PID START: the process PID that started at START (clock
# ticks, field 22 of /proc/PID/stat, as its state file records it) has
# exited: gone, a zombie (a detached daemon's new parent may not reap it
# at once), or the pid reused by a later process.
daemon_ended() {
    local line f
    line=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    read -r -a f <<<"${line##*) }"
    [[ ${f[0]} == Z || ${f[0]} == X || ${f[19]} != "$2" ]]
}
if [[ -x "$VHDMOUNT" ]]; then
    need nm
    [[ -x "$VHDBENCH_MOUNT" ]] || fail "vhdmount is built but vhdbench-mount is not"
    # To files first: under pipefail 'nm | grep -q' fails when nm dies of
    # SIGPIPE after grep found its line.
    nm "$VHDBENCH_MOUNT" >"$T/nm.bench" && nm "$VHDMOUNT" >"$T/nm.vhdmount" || fail "nm failed"
    grep -q ' T bench_dev_file_new$' "$T/nm.bench" || fail "nm sees no bench code in vhdbench-mount (nm broken?)"
    if grep -E ' [TtDdBbRr] (bench_|devs_|aead_bench)' "$T/nm.vhdmount" >"$T/nm.bad"; then
        fail "vhdmount links benchmark code: $(head -3 "$T/nm.bad" | tr '\n' ' ')"
    fi
    expect_status 2 "$VHDMOUNT" --bench-device "aead:$T/x.dat" "$T/mnt-aead"
    mkdir "$T/mnt-aead"
    expect_status 2 "$VHDBENCH_MOUNT" "full:$T/x.dat" "$T/mnt-aead"
    expect_err "^vhdbench-mount: expected aead:FILE"
    one_line_err
    expect_status 2 "$VHDBENCH_MOUNT" "aead:$T/x.dat" "$T/img" "$T/mnt-aead"
    expect_status 1 "$VHDBENCH_MOUNT" "aead:$T/missing.dat" "$T/mnt-aead"
    expect_err "^vhdbench-mount: $T/missing.dat: No such file"
    if [[ -r /dev/fuse && -w /dev/fuse ]] && grep -qw fuse /proc/filesystems &&
        command -v fusermount3 >/dev/null && command -v mountpoint >/dev/null; then
        . "$(dirname "$0")/vhdmount_lib.sh"
        truncate -s 300M "$T/aead.dat"
        # Detached as scripts/bench.sh runs it, with its state file in a
        # directory of this test's own (not the user's, where it was left).
        mkdir -m 0700 "$T/xdg"
        expect_status 0 env XDG_RUNTIME_DIR="$T/xdg" "$VHDBENCH_MOUNT" \
            "aead:$T/aead.dat" "$T/mnt-aead"
        mountpoint -q "$T/mnt-aead" || fail "vhdbench-mount did not mount"
        [[ -f "$T/aead.dat.meta" ]] || fail "no side table next to the device file"
        # The daemon, from the state file it wrote before the mount
        # command returned (fusemount/serve.c detach).
        st=$(grep -lx "mountpoint $(realpath "$T/mnt-aead")" "$T"/xdg/vhdmount/mnt-* |
            head -1) || fail "vhdbench-mount wrote no state file"
        dpid=$(sed -n 's/^pid //p' "$st")
        dstart=$(sed -n 's/^start //p' "$st")
        ! daemon_ended "$dpid" "$dstart" || fail "no live daemon $dpid behind the mount"
        head -c 300000 /dev/urandom >"$T/payload"
        cp "$T/payload" "$T/mnt-aead/p.bin" && cmp "$T/payload" "$T/mnt-aead/p.bin" ||
            fail "data read back differs through the aead bench device"
        fusermount3 -u "$T/mnt-aead" || fail "fusermount3 -u failed"
        # fusermount3 returns once the kernel let go of the mount; the
        # daemon then closes the volume and removes the device file, then
        # the side table (bench_dev_free, after vmnt_finish). Checking the
        # files before the daemon has exited raced that removal (a
        # failure seen once: the device file gone, the side table not
        # yet). Its exit is the end of its cleanup.
        poll 400 daemon_ended "$dpid" "$dstart" || fail "vhdbench-mount $dpid still running after the unmount"
        grep -qx 'state closed' "$st" && grep -qx 'status 0' "$st" ||
            { cat "$st" >&2; fail "vhdbench-mount did not close the volume cleanly"; }
        [[ ! -e "$T/aead.dat" ]] || fail "the device file outlived the unmount"
        [[ ! -e "$T/aead.dat.meta" ]] || fail "the side table outlived the unmount"
    else
        echo "FUSE cannot mount here: the vhdbench-mount mount is not checked"
    fi
else
    echo "vhdmount not built: vhdbench-mount not checked"
fi
note "vhdbench --tiny: all modes, JSON and SVG ok"
