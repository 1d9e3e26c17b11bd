#!/usr/bin/env python3
"""The short summary tools/gpu-check.sh prints last (at most 80 lines): the GPU, the date, how each
phase went, the ctest counts, one line per benchmark of bench_gpu's JSON (name, time, user
counters such as GFLOP/s, GB/s, ratios) and the training-step comparison table. Standard library
only. A JSON file cut short (the benchmark was stopped by its timeout) still yields the runs it
holds.

    tools/gpu_table.py --gpu NAME --phases "configure=ok:12s build=FAIL:240s ..." \\
        [--ctest-log FILE] [--bench-json FILE] [--compare-log FILE] [--extra LINE]...
"""
import argparse
import datetime
import json
import re
import sys

MAX_LINES = 80
STANDARD_KEYS = {
    "name", "run_name", "run_type", "repetitions", "repetition_index", "threads", "iterations", "real_time",
    "cpu_time", "time_unit", "family_index", "per_family_instance_index", "aggregate_name", "aggregate_unit",
    "error_occurred", "error_message", "label",
}


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def ctest_counts(text):
    """(passed, skipped, failed, total, failed names) from ctest's output, or None."""
    if text is None:
        return None
    if "No tests were found" in text:
        return 0, 0, 0, 0, []
    m = re.search(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)", text)
    if not m:
        return None
    failed, total = int(m.group(2)), int(m.group(3))
    names = re.findall(r"^\s*\d+ - (\S+) \(", text.split("The following tests FAILED:")[-1], re.M) if failed else []
    skipped = 0
    if "The following tests did not run:" in text:
        block = text.split("The following tests did not run:")[1].split("The following tests FAILED:")[0]
        skipped = len(re.findall(r"^\s*\d+ - \S+ \(Skipped\)", block, re.M))
    return total - failed - skipped, skipped, failed, total, names


def benchmarks(text):
    """The runs of a Google Benchmark JSON file; salvages the complete ones from a truncated file."""
    if not text:
        return []
    try:
        return json.loads(text).get("benchmarks", [])
    except ValueError:
        pass
    start = text.find('"benchmarks"')
    if start < 0:
        return []
    pos = text.find("[", start) + 1
    decoder, runs = json.JSONDecoder(), []
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        try:
            run, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return runs
        runs.append(run)


def number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    a = abs(v)
    if a == 0:
        return "0"
    if a >= 1e9 or a < 1e-3:
        return f"{v:.3g}"
    if a >= 1000:
        return f"{v:.0f}"
    return f"{v:.4g}"


def short_name(name):
    name = re.sub(r"/(real_time|manual_time|process_time)$", "", name)
    name = re.sub(r"/min_time:[0-9.]+", "", name)
    name = re.sub(r"/min_warmup_time:[0-9.]+", "", name)
    return name


def bench_lines(runs):
    lines = []
    width = min(48, max([len(short_name(r.get("name", "?"))) for r in runs] + [9]))
    i = 0
    while i < len(runs):
        r = runs[i]
        name = short_name(r.get("name", "?"))
        if len(name) > width:
            name = name[: width - 1] + "~"
        if r.get("error_occurred"):  # consecutive runs failing alike: one line
            msg, j = r.get("error_message", ""), i + 1
            while j < len(runs) and runs[j].get("error_occurred") and runs[j].get("error_message", "") == msg:
                j += 1
            if j - i > 1:
                name = f"{name} and {j - i - 1} more"
            lines.append(f"{name:<{width}}  ERROR {msg}"[:120])
            i = j
            continue
        i += 1
        t = f"{number(r.get('real_time', float('nan')))} {r.get('time_unit', '')}"
        counters = [f"{k}={number(v)}" for k, v in r.items() if k not in STANDARD_KEYS]
        lines.append(f"{name:<{width}}  {t:>12}  {' '.join(counters)}".rstrip())
    return lines


def grouped_lines(runs):
    """bench_gpu's families as ratios read in one run: each sliced GEMM against cuBLAS on contiguous
    operands of the same shape, each memory-bound kernel's GB/s against the device copy. Runs of
    other families (or with errors) keep one line each."""
    by_name = {short_name(r.get("name", "")): r for r in runs if not r.get("error_occurred")}
    lines, used = [], set()
    gemm = re.compile(r"gemm_bench/(forward|backward_dx|backward_dw)_window/(\d+)/(\d+)$")
    rows = []
    for name, r in by_name.items():
        m = gemm.match(name)
        if not m:
            continue
        other = by_name.get(name.replace("_window/", "_contiguous/"))
        if not other:
            continue
        used.update({name, short_name(other["name"])})
        a, b = r.get("GFLOP/s", 0.0), other.get("GFLOP/s", 0.0)
        rows.append((m.group(1), int(m.group(2)), int(m.group(3)), a, b))
    if rows:
        lines.append("sliced GEMM (TFLOP/s): window of W[4096,4096] vs cuBLAS contiguous, same shape")
        worst = min(a / b for _, _, _, a, b in rows if b)
        for kind, B, k, a, b in sorted(rows, key=lambda x: (x[0], x[1], x[2])):
            lines.append(f"  {kind:<12} B={B:<5} k={k:<5} {a / 1e3:7.1f} vs {b / 1e3:7.1f}   ratio {a / b if b else 0:.3f}")
        lines.append(f"  worst ratio {worst:.3f} (target >= 0.95)")
    copy = by_name.get("bandwidth_bench/copy")
    bw = [(n.split("/")[1], r.get("GB/s", 0.0)) for n, r in by_name.items() if n.startswith("bandwidth_bench/")]
    if bw:
        ceiling = copy.get("GB/s", 0.0) if copy else 0.0
        lines.append(f"memory-bound kernels, 16384x4096 f32 (GB/s; device copy = {ceiling:.0f} GB/s)")
        for op, g in bw:
            used.add(f"bandwidth_bench/{op}")
            frac = f"{g / ceiling:.2f} of copy" if ceiling else ""
            lines.append(f"  {op:<14} {g:8.0f}   {frac}")
    rest = [r for r in runs if short_name(r.get("name", "")) not in used]
    return lines + (bench_lines(rest) if rest else [])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu", default="unknown")
    ap.add_argument("--phases", default="", help="space-separated name=status:seconds")
    ap.add_argument("--ctest-log")
    ap.add_argument("--bench-json")
    ap.add_argument("--compare-log")
    ap.add_argument("--train-log")
    ap.add_argument("--lm-log")
    ap.add_argument("--conv-log")
    ap.add_argument("--extra", action="append", default=[], help="a line printed under the header")
    args = ap.parse_args()

    head = [
        "== sortednet GPU check ==",
        f"GPU:     {args.gpu}",
        f"date:    {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    ]
    head += [f"         {e}" if i else f"setup:   {e}" for i, e in enumerate(args.extra)]
    head.append(f"phases:  {args.phases.strip() or '-'}")
    counts = ctest_counts(read(args.ctest_log)) if args.ctest_log else None
    if not args.ctest_log:
        head.append("tests:   not run")
    elif counts is None:
        head.append("tests:   no result (see ctest.log)")
    else:
        passed, skipped, failed, total, names = counts
        line = f"tests:   {passed} passed, {skipped} skipped, {failed} failed (of {total}, ctest -L cuda)"
        if names:
            line += ": " + " ".join(names)
            if len(line) > 160:
                line = line[:157] + "..."
        head.append(line)

    compare = []
    text = read(args.compare_log) if args.compare_log else None
    if text:
        compare = [l for l in text.splitlines() if l.startswith("|")]
        if compare:
            compare = ["W2/W1 training step, sortednet vs PyTorch on the GPU:"] + compare[:8]

    text = read(args.train_log) if args.train_log else None
    if text:  # the run's header, its last step line, and the evaluation's first and last rows
        lines = text.splitlines()
        keep = [l for l in lines if l.startswith("training ")][:1]
        keep += [l for l in lines if l.startswith("step ")][-1:]
        rows = [l for l in lines if re.match(r"^(width|depth)\S*=", l)]
        keep += rows[:1] + rows[-1:]
        keep += [l for l in lines if l.startswith("error") or "wall" in l][-2:]
        compare = ["W2 demo recipe, one epoch on the GPU:"] + [l[:150] for l in keep] + compare

    text = read(args.lm_log) if args.lm_log else None
    if text:  # W4: the last step line, each exit's row, the speculative decoding line
        lines = text.splitlines()
        keep = [l for l in lines if l.startswith("step ")][-1:]
        keep += [l for l in lines if re.match(r"^depth=\d", l)]
        keep += [l for l in lines if l.startswith(("speculative", "error"))][-1:]
        compare = ["W4 on the GPU (SoFT steps, exits, speculative decoding):"] + [l[:150] for l in keep] + compare

    text = read(args.conv_log) if args.conv_log else None
    if text:  # bench_train_step's W2 lines under each convolution path
        keep = [re.sub(r"\s+", " ", l)[:110] for l in text.splitlines() if l.startswith(("== conv", "step/"))]
        compare = ["W2 step on the GPU by convolution path (bench_train_step):"] + keep[:8] + compare

    runs = benchmarks(read(args.bench_json)) if args.bench_json else []
    body = []
    if runs:
        body = [f"bench_gpu ({len(runs)} runs):"] + grouped_lines(runs)
    elif args.bench_json:
        body = ["bench_gpu: no results"]
    room = MAX_LINES - len(head) - len(compare)
    if len(body) > room:
        cut = max(room - 1, 0)
        body = body[:cut] + [f"... {len(body) - cut} more lines in bench_gpu.json"][: max(room, 0)]
    for line in head + body + compare:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
