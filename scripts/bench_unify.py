#!/usr/bin/env python3
"""End-to-end benchmark of `cdh unify` (parse, normalise, resolve, golden records, write).

Usage: scripts/bench_unify.py [--sizes 1000000,10000000] [--runs 5] [--workdir bench-data]

For each size it generates two files with `cdh gen` (same seed): one where 5% of contacts
carry one of 25 shared store phones or placeholder emails, and the same file without them.
It runs `cdh unify --keys line_uid,display_mobile,display_email --region TW` on each, RUNS
times, and prints a Markdown table: median and min wall time, peak resident memory (from
/usr/bin/time), bytes per contact, and the ratio of the shared-values file to the plain one
(measured in the same run, interleaved, so machine noise hits both alike).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CDH = REPO / "target" / "release" / "cdh"
KEYS = "line_uid,display_mobile,display_email"


def run_once(path: Path, out: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS in bytes of one `cdh unify`."""
    cmd = ["/usr/bin/time", "-f", "%M", str(CDH), "unify", "--keys", KEYS, "--region", "TW", str(path), "--out", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"cdh unify failed on {path}:\n{proc.stderr}")
    peak_kib = int(proc.stderr.strip().splitlines()[-1])
    return wall, peak_kib * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=REPO / "bench-data")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-p", "cdh"], cwd=REPO, check=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores; cdh {CDH}")
    print()
    print("| contacts | file | median s | min s | peak RSS MiB | bytes/contact | contacts/s |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    ratios = []
    for n in [int(s) for s in args.sizes.split(",")]:
        files = {}
        for shared in (True, False):
            name = f"gen-{n}-{'shared' if shared else 'plain'}.csv"
            path = args.workdir / name
            if not path.exists():
                cmd = [str(CDH), "gen", str(n), str(path), "--seed", "1"]
                if not shared:
                    cmd.append("--no-shared-values")
                subprocess.run(cmd, check=True, capture_output=True)
            files[shared] = path
        results = {True: [], False: []}
        for _ in range(args.runs):
            for shared in (False, True):
                results[shared].append(run_once(files[shared], args.workdir / "out"))
        for shared in (False, True):
            walls = [w for w, _ in results[shared]]
            peak = max(r for _, r in results[shared])
            med = statistics.median(walls)
            label = "5% shared values" if shared else "plain"
            print(f"| {n:,} | {label} | {med:.3f} | {min(walls):.3f} | {peak / 2**20:.0f} | {peak / n:.0f} | {n / med:,.0f} |")
        ratios.append((n, statistics.median(w for w, _ in results[True]) / statistics.median(w for w, _ in results[False])))
    print()
    for n, r in ratios:
        print(f"shared-values / plain at {n:,} contacts: {r:.2f}x")


if __name__ == "__main__":
    main()
