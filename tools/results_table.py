#!/usr/bin/python3
"""Compares a sorted run with its independent baselines: prints markdown for docs/results.md.
Usage: tools/results_table.py RUN_DIR [--sorted NAME] [--all]  (RUN_DIR holds NAME/eval.csv,
NAME defaulting to "sorted", and independent-*/eval.csv; --all adds every sorted sub-model's row)."""
import csv
import glob
import os
import sys


def rows(path):
    with open(path) as f:
        return {r["submodel"]: r for r in csv.DictReader(f)}


def main():
    run = sys.argv[1]
    name = sys.argv[sys.argv.index("--sorted") + 1] if "--sorted" in sys.argv else "sorted"
    sorted_rows = rows(os.path.join(run, name, "eval.csv"))
    baselines = {}
    for path in sorted(glob.glob(os.path.join(run, "independent-*", "eval.csv"))):
        baselines.update(rows(path))
    print("| sub-model | params | MFLOPs | sorted accuracy | independent accuracy | sorted / independent |")
    print("|---|---|---|---|---|---|")
    worst = None
    for name, b in baselines.items():
        s = sorted_rows[name]
        ratio = float(s["accuracy"]) / float(b["accuracy"])
        worst = ratio if worst is None else min(worst, ratio)
        print(f"| {name} | {s['params']} | {int(s['flops']) / 1e6:.1f} | {float(s['accuracy']):.4f} | "
              f"{float(b['accuracy']):.4f} | {ratio:.3f} |")
    full = "width=8/8,depth.s1=3,depth.s2=3,depth.s3=3"
    if full in baselines:
        gap = (float(baselines[full]["accuracy"]) - float(sorted_rows[full]["accuracy"])) * 100
        print(f"\nfull model: {gap:+.2f} points behind its independent twin (goal ≤ 0.5)")
    print(f"worst sorted/independent ratio over the baselines: {worst:.3f} (goal ≥ 0.96)")
    accs = sorted(float(r["accuracy"]) for r in sorted_rows.values())
    print(f"all {len(accs)} sorted sub-models: accuracy from {accs[0]:.4f} to {accs[-1]:.4f}")
    if "--all" in sys.argv:
        print("\n| sub-model | params | MFLOPs | accuracy | loss | latency_ms (batch 1) |")
        print("|---|---|---|---|---|---|")
        for name, r in sorted_rows.items():
            print(f"| {name} | {r['params']} | {int(r['flops']) / 1e6:.1f} | {float(r['accuracy']):.4f} | "
                  f"{float(r['loss']):.4f} | {float(r['latency_ms']):.2f} |")


if __name__ == "__main__":
    main()
