#!/usr/bin/env python3
"""Markdown tables for docs/PERFORMANCE.md from a vhdbench --json file.

    python3 scripts/bench-tables.py build-release/bench-out/vhdbench.json

One table per workload (modes on the memory and file backends, peers in the
file column, each as median (min-max) with its ratio to plain and to the
AES-256-GCM ceiling), the rollback-detection overhead line, then the
ceilings and the scale figures. Nothing is computed here that vhdbench did
not write: ratios are the JSON's own ratio_plain / ratio_aes fields."""
import json
import sys

MODES = ["plain", "checksum", "aead", "full", "full+anchor"]
ORDER = ["seq-write", "seq-read", "fsck-verify", "rand-read", "rand-write", "oltp",
         "web-create", "web-read", "sqlite"]  # vhdbench's report order


def num(v):
    if v is None:
        return ""
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def cell(f):
    return f"{num(f['median'])} ({num(f['min'])}–{num(f['max'])})"


def pct(v):
    return "" if v is None else f"{100 * v:.0f}%"


def main(path):
    d = json.load(open(path))
    figs = d["figures"]
    by = {}
    for f in figs:
        by[(f["workload"], f["subject"], f["backend"])] = f
    workloads = []
    for f in figs:
        if f["backend"] in ("memory", "file", "peer") and f["workload"] not in workloads \
                and f["workload"] not in ("ceiling", "scale") \
                and not f["workload"].startswith(("write-amplification", "flushes")):
            workloads.append(f["workload"])
    workloads.sort(key=lambda w: ORDER.index(w) if w in ORDER else len(ORDER))
    peers = [f["subject"] for f in figs
             if f["backend"] == "peer" and f["workload"] == workloads[0]]
    over = {(o["workload"], o["backend"]): o for o in d["rollback_overhead_pct"]}
    for wl in workloads:
        unit = next(f["unit"] for f in figs if f["workload"] == wl)
        print(f"### {wl} ({unit})\n")
        print("| subject | memory | vs plain | vs AES | file | vs plain | vs AES |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for m in MODES:
            mem, fil = by.get((wl, m, "memory")), by.get((wl, m, "file"))
            if not mem and not fil:
                continue
            row = [m]
            for f in (mem, fil):
                row += [cell(f), pct(f.get("ratio_plain")), pct(f.get("ratio_aes"))] if f \
                    else ["", "", ""]
            print("| " + " | ".join(row) + " |")
        for p in peers:
            f = by.get((wl, p, "peer"))
            if f:
                print(f"| {p} (peer) | | | | {cell(f)} | {pct(f.get('ratio_plain'))} of dir"
                      f" | {pct(f.get('ratio_aes'))} |")
        line = []
        for b in ("memory", "file"):
            o = over.get((wl, b))
            if o and o.get("full_vs_aead") is not None:
                s = f"{b}: full {o['full_vs_aead']:.0f}%"
                if o.get("full_anchor_vs_aead") is not None:
                    s += f", full+anchor {o['full_anchor_vs_aead']:.0f}%"
                line.append(s)
        if line:
            print("\nRollback-detection overhead (throughput lost vs aead): "
                  + "; ".join(line) + ".")
        print()
    for title, wl in (("Ceilings", "ceiling"), ("Scale (file backend)", "scale"),
                      ("Image flushes per sync (rand-write)", "flushes-per-sync"),
                      ("Write amplification, seq-write", "write-amplification seq-write"),
                      ("Write amplification, rand-write", "write-amplification rand-write")):
        rows = [f for f in figs if f["workload"] == wl]
        if not rows:
            continue
        print(f"### {title}\n")
        print("| what | backend | median | min | max | unit |")
        print("|---|---|---:|---:|---:|---|")
        for f in rows:
            print(f"| {f['subject']} | {f['backend'] or '-'} | {num(f['median'])} | "
                  f"{num(f['min'])} | {num(f['max'])} | {f['unit']} |")
        print()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: bench-tables.py VHDBENCH.json", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1])
