#!/usr/bin/env python3
"""Make the deterministic mixed tree of scripts/bench-mkvhd.sh.

    python3 scripts/gen-mixed-tree.py DIR MIB [SEED]

About MIB MiB in DIR (which must not exist): half in large files of
16-96 MiB, a quarter in files of 64 KiB - 4 MiB, the rest in small files
(sizes log-uniform over 1 B - 64 KiB, so mostly a few KiB: about 45,000 of
them for 1 GiB) spread over 480 directories three levels deep, plus 40
relative symbolic links to files and one to a directory. Sizes, names and
contents (slices of one pseudo-random pool) come from SEED (default 14),
every mtime is fixed: the same arguments make the same tree.
"""
import os
import random
import sys


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    root, mib = sys.argv[1], int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 14
    rng = random.Random(seed)
    pool = random.Random(seed + 1).randbytes(16 << 20)

    def content(n):
        out = bytearray()
        while n > 0:
            off = rng.randrange(0, len(pool) - 4096)
            k = min(n, len(pool) - off, 1 << 20)
            out += pool[off:off + k]
            n -= k
        return out

    dirs = [f"src{a:02d}/mod{b}/part{c}" for a in range(10) for b in range(8) for c in range(6)]
    total = mib << 20
    files = []
    rest = total // 2
    while rest > 0:
        s = min(rest, rng.randrange(16 << 20, 96 << 20))
        files.append((f"data/blob{len(files):03d}.bin", s))
        rest -= s
    rest, i = total // 4, 0
    while rest > 0:
        s = min(rest, int(2 ** rng.uniform(16, 22)))
        files.append((f"{rng.choice(dirs)}/asset{i:05d}.dat", s))
        rest -= s
        i += 1
    rest, i = total - total // 2 - total // 4, 0
    while rest > 0:
        s = min(rest, int(2 ** rng.uniform(0, 16)))
        ext = rng.choice([".c", ".h", ".py", ".txt", ".json", ""])
        files.append((f"{rng.choice(dirs)}/file{i:05d}{ext}", s))
        rest -= s
        i += 1
    os.mkdir(root)
    for path, size in files:
        p = os.path.join(root, path)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(content(size))
    for k in range(40):
        path, _ = files[rng.randrange(len(files))]
        d = os.path.join(root, rng.choice(dirs))
        os.makedirs(d, exist_ok=True)
        os.symlink(os.path.relpath(os.path.join(root, path), d), os.path.join(d, f"link{k:02d}"))
    os.symlink("src00/mod0/part0", os.path.join(root, "current"))
    for dp, dn, fn in os.walk(root):
        for n in fn + dn:
            os.utime(os.path.join(dp, n), (1700000000, 1700000000), follow_symlinks=False)


main()
