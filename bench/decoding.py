#!/usr/bin/python3
"""Decoding of a trained language model at batch 1 on the CPU: confidence-based early exit and
self-speculative decoding (greedy and sampled), each against plain full-model decoding with a KV
cache in the same process (`sortednet generate` prints both). Prints markdown tables.

    bench/decoding.py --checkpoint runs/w4-400 [--max-new 200] [--build build]
"""
import argparse
import os
import re
import subprocess

PROMPTS = ["The ", "Q: What is the difference between", "A man walked into"]
POLICIES = ["0.95,0.9,0.85", "0.9,0.8,0.7", "0.8,0.6,0.5", "0.6,0.4,0.3"]


def generate(cli, checkpoint, prompt, max_new, *flags):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    r = subprocess.run([cli, "generate", "--checkpoint", checkpoint, "--prompt", prompt, "--max-new", str(max_new),
                        *flags], capture_output=True, text=True, errors="replace", env=env)
    if r.returncode != 0:
        raise SystemExit(f"generate {' '.join(flags)} failed: {r.stderr.strip()}")
    return r.stderr.strip().splitlines()


def number(pattern, line):
    m = re.search(pattern, line)
    return m.group(1) if m else "?"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--build", default="build")
    ap.add_argument("--max-new", type=int, default=200)
    ap.add_argument("--temperature", default="0.8")
    args = ap.parse_args()
    cli = os.path.join(args.build, "bin", "sortednet")

    print("Early exit (greedy):\n")
    print("| thresholds (exits 2/4/6) | prompt | bytes stopped at 2/4/6/8 | mean depth | speed-up vs full | same as full greedy |")
    print("|---|---|---|---|---|---|")
    for policy in POLICIES:
        for prompt in PROMPTS:
            line = generate(cli, args.checkpoint, prompt, args.max_new, "--early-exit", policy)[-1]
            stops = "/".join(re.findall(r"([0-9]+) at [0-9]", line))
            print(f"| {policy} | \"{prompt}\" | {stops} | {number(r'mean depth ([0-9.]+)', line)} | "
                  f"{number(r'speed-up ([0-9.]+x)', line)} | {number(r'full model: (yes|no[^;]*)$', line)} |")

    print("\nSelf-speculative decoding, draft exit chosen on the prompt:\n")
    print("| sampling | prompt | draft exit | acceptance α | bytes per verify step | draft/target cost | "
          "speed-up vs full | same as full greedy |")
    print("|---|---|---|---|---|---|---|---|")
    for sampling in (["greedy"], ["--temperature", args.temperature, "--seed", "1"]):
        for prompt in PROMPTS:
            flags = ["--speculative"] + ([] if sampling == ["greedy"] else sampling)
            line = generate(cli, args.checkpoint, prompt, args.max_new, *flags)[-1]
            name = "greedy" if sampling == ["greedy"] else f"T = {args.temperature}"
            same = number(r"full model: (yes|no[^;]*)$", line) if name == "greedy" else "(other draws)"
            exit_ = number(r"draft exit ([0-9]+)", line)
            print(f"| {name} | \"{prompt}\" | {exit_} | {number(r'acceptance ([0-9.]+)', line)} | "
                  f"{number(r'([0-9.]+) bytes per verify', line)} | {number(r'cost ([0-9.]+)', line)} | "
                  f"{number(r'speed-up ([0-9.]+x)', line)} | {same} |")


if __name__ == "__main__":
    main()
