#!/usr/bin/python3
"""PyTorch CPU on the sliced-GEMM shapes of bench_gemm (WORKLOADS.md): the full W is 4096x4096,
the window W[:k, :k]. Prints one JSON object per line: pass, B, k, threads, seconds, gflops.

Passes, with PyTorch's best way of doing each on a slice of a larger weight:
  forward           F.linear(X, W[:k, :k])
  backward_data     dY @ W[:k, :k]
  backward_weight   dW[:k, :k].addmm_(dY.t(), X)   (in place into the window)
  forward_backward  autograd: F.linear(X, W[:k, :k]).backward(dY), W.requires_grad
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

FULL = 4096


def timed(fn, min_time):
    fn()  # warm-up
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and runs >= 2:
            return elapsed / runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2", help="thread counts to try; the best is kept")
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--shapes", default="128:512,128:1024,128:2048,128:4096,2048:512,2048:1024,2048:2048,2048:4096")
    args = ap.parse_args()
    torch.manual_seed(0)
    W = (torch.randn(FULL, FULL) * 0.01).requires_grad_()
    dW = torch.zeros(FULL, FULL)
    for shape in args.shapes.split(","):
        B, k = map(int, shape.split(":"))
        X, dY = torch.randn(B, k), torch.randn(B, k)
        Wk, dWk = W.detach()[:k, :k], dW[:k, :k]

        def forward_backward():
            F.linear(X, W[:k, :k]).backward(dY)

        passes = {
            "forward": (lambda: F.linear(X, Wk), 1),
            "backward_data": (lambda: dY @ Wk, 1),
            "backward_weight": (lambda: dWk.addmm_(dY.t(), X), 1),
            "forward_backward": (forward_backward, 3),
        }
        for name, (fn, gemms) in passes.items():
            best = None
            for threads in map(int, args.threads.split(",")):
                torch.set_num_threads(threads)
                with torch.set_grad_enabled(name == "forward_backward"):
                    seconds = timed(fn, args.min_time)
                if best is None or seconds < best[1]:
                    best = (threads, seconds)
            flops = 2.0 * B * k * k * gemms
            print(json.dumps({"pass": name, "B": B, "k": k, "threads": best[0], "seconds": best[1],
                              "gflops": flops / best[1] * 1e-9}), flush=True)
            W.grad = None


if __name__ == "__main__":
    main()
