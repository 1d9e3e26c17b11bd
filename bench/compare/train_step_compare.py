#!/usr/bin/python3
"""Training-step time of W1 and W2 sub-models (full, half width, smallest), of W3 (the full
encoder, depth 3 / 4 heads / MLP 384, the smallest) and of W4 (SoFT over every exit, the full
depth, exit 2; MFLOPs per token) in sortednet and in PyTorch (CPU, or both on the GPU with
--device cuda), each pair measured back to back, in several rounds (medians reported). Usage from
the repository root after a build:

    bench/compare/train_step_compare.py [--build build] [--rounds 2] [--only a,b] [--tuned-malloc]
                                        [--device cuda --python python3]
"""
import argparse
import json
import os
import statistics
import subprocess

NAMES = ["mlp_full", "mlp_half", "mlp_smallest", "resnet_full", "resnet_half", "resnet_smallest",
         "vit_full", "vit_mid", "vit_smallest", "llama_soft", "llama_full", "llama_exit2"]
# W2's step against its FLOPs (run with --only): every width at full depth, depths 1 and 2 at full width.
SCALE_NAMES = [f"resnet_w{k}" for k in (1, 2, 3, 5, 6, 7)] + ["resnet_d1", "resnet_d2"]
MFLOPS = {}


def env():
    e = dict(os.environ)
    e.pop("OPENBLAS_CORETYPE", None)
    e.pop("OPENBLAS_L2_SIZE", None)
    return e


# glibc malloc kept from handing large blocks back to the system: PyTorch's CPU allocator frees
# activations to malloc every step, and glibc returns blocks above its mmap threshold to the
# kernel, so each step page-faults them in again. These settings give the peer its best case.
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(16 << 30),
                "MALLOC_TOP_PAD_": str(1 << 30)}


def has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512f " in f.read().replace("\n", " ")
    except OSError:
        return False


# PyTorch picks its AVX2 kernels on an AVX-512 CPU unless told otherwise (sortednet runs AVX-512
# where the CPU has it): the tuned run asks for AVX-512 too.
if has_avx512():
    TUNED_MALLOC["ATEN_CPU_CAPABILITY"] = "avx512"


def ours(build, name, min_time, device):
    e = env()
    e["SN_BENCH_DEVICE"] = device
    out = subprocess.run([os.path.join(build, "bin", "bench_train_step"), f"--benchmark_filter=step/{name}/",
                          "--benchmark_format=json", f"--benchmark_min_time={min_time}"],
                         check=True, capture_output=True, text=True, env=e).stdout
    b = json.loads(out)["benchmarks"][0]
    MFLOPS[name] = b["MFLOPs/example"]
    return b["real_time"]  # ms


def torch(name, min_time, device, python, tuned_malloc=False):
    here = os.path.dirname(os.path.abspath(__file__))
    e = env()
    if tuned_malloc:
        e.update(TUNED_MALLOC)
    out = subprocess.run([python, os.path.join(here, "train_step_torch.py"), f"--only={name}",
                          f"--min-time={min_time}", f"--device={device}"], check=True, capture_output=True, text=True, env=e).stdout
    return json.loads(out.splitlines()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=2.0)
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(NAMES + SCALE_NAMES))
    ap.add_argument("--device", default="cpu", help="cpu or cuda: both sides run there")
    ap.add_argument("--python", default="/usr/bin/python3", help="the interpreter that has PyTorch")
    ap.add_argument("--tuned-malloc", action="store_true",
                    help="also run PyTorch at its best case: glibc malloc tuned not to return memory, and "
                         "its AVX-512 kernels where the CPU has them")
    args = ap.parse_args()
    names = [n for n in NAMES + SCALE_NAMES if (not args.only and n in NAMES) or n in args.only.split(",")]
    ours_ms, torch_ms, tuned_ms, threads, tuned_threads = {}, {}, {}, {}, {}
    blas = subprocess.run([args.python, "-c", "import torch; print(torch.__config__.show())"], capture_output=True,
                          text=True, env=env()).stdout
    capability = [line.strip() for line in blas.splitlines() if "capability" in line]
    # Debian's PyTorch calls whatever libblas.so.3 is: OpenBLAS once libopenblas0 is installed,
    # otherwise the slow reference BLAS.
    print("PyTorch:", *capability, "(by default); libblas.so.3 ->",
          os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3"))
    for _ in range(args.rounds):
        for name in names:
            ours_ms.setdefault(name, []).append(ours(args.build, name, args.min_time, args.device))
            t = torch(name, args.min_time, args.device, args.python)
            torch_ms.setdefault(name, []).append(t["ms"])
            threads[name] = t["threads"] if t.get("layout", "nchw") == "nchw" else f'{t["threads"]}, {t["layout"]}'
            if args.tuned_malloc:
                t = torch(name, args.min_time, args.device, args.python, tuned_malloc=True)
                tuned_ms.setdefault(name, []).append(t["ms"])
                tuned_threads[name] = t["threads"] if t.get("layout", "nchw") == "nchw" else f'{t["threads"]}, {t["layout"]}'
    extra = " PyTorch, tuned (threads) | tuned / sortednet |" if args.tuned_malloc else ""
    print("| sub-model | MFLOPs/example | sortednet ms/step | PyTorch ms/step (threads) | PyTorch / sortednet |" + extra)
    print("|---|---|---|---|---|" + ("---|---|" if args.tuned_malloc else ""))
    for name in names:
        a, b = statistics.median(ours_ms[name]), statistics.median(torch_ms[name])
        row = f"| {name} | {MFLOPS[name]:.2f} | {a:.1f} | {b:.1f} ({threads[name]}) | {b / a:.2f}x |"
        if args.tuned_malloc:
            c = statistics.median(tuned_ms[name])
            row += f" {c:.1f} ({tuned_threads[name]}) | {c / a:.2f}x |"
        print(row)


if __name__ == "__main__":
    main()
