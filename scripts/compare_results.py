"""Compares the runs in one results folder with the runs of the same ids in another, cell by cell:
every column of steps.csv, eval.csv and probes.csv except the timings (`*_ms`, `*_s`). For checking
that a new build reproduces committed results exactly: rerun a study into a scratch folder, then compare.

    ablate run experiments/default-config.toml --jobs 2 --results /tmp/dc
    python3 scripts/compare_results.py /tmp/dc results

Prints one line per run and file, then the totals; exits 1 when a cell differs, a row count differs or a
run is missing from the second folder.
"""
import argparse
import csv
import os
import sys


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("new", help="results folder with the runs to check")
    ap.add_argument("old", help="results folder with the same run ids (e.g. results)")
    args = ap.parse_args()
    runs = sorted(r for r in os.listdir(args.new) if os.path.isdir(os.path.join(args.new, r)))
    if not runs:
        sys.exit(f"error: no run folders in {args.new}")
    cells, bad = 0, 0
    for run in runs:
        old_run = os.path.join(args.old, run)
        if not os.path.isdir(old_run):
            print(f"{run}: not in {args.old}")
            bad += 1
            continue
        for name in ("steps.csv", "eval.csv", "probes.csv"):
            a, b = rows(os.path.join(args.new, run, name)), rows(os.path.join(old_run, name))
            if len(a) != len(b):
                print(f"{run:34s} {name:11s} rows {len(a)} vs {len(b)}")
                bad += 1
                continue
            cols = [c for c in (a[0] if a else {}) if not c.endswith("_ms") and not c.endswith("_s")]
            diff = sum(x[c] != y.get(c) for x, y in zip(a, b) for c in cols)
            cells += len(a) * len(cols)
            bad += diff
            print(f"{run:34s} {name:11s} rows {len(a):6d} columns {len(cols):2d} differing cells {diff}")
    print(f"{len(runs)} runs, {cells} cells compared, {bad} differences")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
