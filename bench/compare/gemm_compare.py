#!/usr/bin/python3
"""Runs bench_gemm and the PyTorch peer on the same shapes and prints the markdown table recorded
in docs/performance.md. Usage (from the repository root, after a build):

    bench/compare/gemm_compare.py [--build build] [--min-time 0.3] [--rounds 2]

The machine's speed drifts over minutes, so each shape is measured by both right after each
other, in several rounds, and the median of every figure is reported.
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed from the environment of both runs.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

PASSES = ["forward", "backward_data", "backward_weight", "forward_backward"]


def clean_env():
    env = dict(os.environ)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(var, None)
    return env


def run_ours(build, min_time, B, k):
    out = subprocess.run(
        [os.path.join(build, "bin", "bench_gemm"), "--benchmark_format=json",
         f"--benchmark_min_time={min_time}", f"--benchmark_filter=/{B}/{k}/"],
        check=True, capture_output=True, text=True, env=clean_env()).stdout
    results = {}
    for b in json.loads(out)["benchmarks"]:
        # name: run/<pass>_<way>/<B>/<k>/...
        parts = b["name"].split("/")
        label, B, k = parts[1], int(parts[2]), int(parts[3])
        for p in sorted(PASSES, key=len, reverse=True):
            if label.startswith(p + "_"):
                results[(p, label[len(p) + 1:], B, k)] = b["GFLOP/s"] / 1e9 if b["GFLOP/s"] > 1e6 else b["GFLOP/s"]
                break
    return results


def run_torch(min_time, B, k):
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(["/usr/bin/python3", os.path.join(here, "gemm_torch.py"), f"--min-time={min_time}",
                          f"--shapes={B}:{k}"],
                         check=True, capture_output=True, text=True, env=clean_env()).stdout
    return {(r["pass"], r["B"], r["k"]): r for r in map(json.loads, out.splitlines())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds; medians reported")
    args = ap.parse_args()
    samples_ours, samples_torch = {}, {}
    for _ in range(args.rounds):
        for B in (128, 2048):
            for k in (512, 1024, 2048, 4096):
                for key, v in run_ours(args.build, args.min_time, B, k).items():
                    samples_ours.setdefault(key, []).append(v)
                for key, r in run_torch(args.min_time, B, k).items():
                    samples_torch.setdefault(key, []).append(r)
    ours = {key: statistics.median(v) for key, v in samples_ours.items()}
    torch = {}
    for key, runs in samples_torch.items():
        best = max(runs, key=lambda r: r["gflops"])
        torch[key] = dict(best, gflops=statistics.median(r["gflops"] for r in runs))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print()
    print("| pass | B | k | sortednet GFLOP/s | BLAS on window | sortednet / BLAS | BLAS contiguous | "
          "copy window + BLAS | PyTorch (threads) | sortednet / PyTorch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    worst_blas, worst_torch = 9.0, 9.0
    for p in PASSES:
        for (pp, way, B, k), g in sorted(ours.items(), key=lambda kv: (kv[0][2], kv[0][3])):
            if pp != p or way != "sortednet":
                continue
            blas = ours.get((p, "blas_window", B, k))
            contig = ours.get((p, "blas_contiguous", B, k))
            copy = ours.get((p, "copy_then_blas", B, k))
            t = torch.get((p, B, k))
            r_blas = g / blas if blas else None
            r_torch = g / t["gflops"] if t else None
            if r_blas:
                worst_blas = min(worst_blas, r_blas)
            if r_torch:
                worst_torch = min(worst_torch, r_torch)
            fmt = lambda v: f"{v:.1f}" if v else "–"
            print(f"| {p} | {B} | {k} | {g:.1f} | {fmt(blas)} | {r_blas:.3f} | {fmt(contig)} | {fmt(copy)} | "
                  f"{t['gflops']:.1f} ({t['threads']}) | {r_torch:.2f} |")
    print()
    print(f"worst sortednet / BLAS on the same operands: {worst_blas:.3f}")
    print(f"worst sortednet / PyTorch: {worst_torch:.2f}")


if __name__ == "__main__":
    sys.exit(main())
