#!/usr/bin/env bash
# tests/faults.sh — crashes and faults never cost a run or give a wrong model (label `train`).
#  1. SIGKILL at exact moments (mid-accumulation, after the optimizer step, mid-checkpoint-write,
#     right after the rename) and at random moments; resuming gives a final checkpoint
#     byte-identical to an uninterrupted run's (parameters, optimizer, sampler and RNG states).
#  2. SIGTERM saves a checkpoint and exits with 143; resuming gives the same bytes.
#  3. A corrupted checkpoint is refused by its checksum; resume falls back to a kept older one.
#  4. A NaN gradient is skipped and counted (nonfinite=skip) or stops the run with one line
#     naming the last good checkpoint (nonfinite=stop).
#  5. An error in the loader's background thread ends the run with one line and a non-zero exit
#     (not std::terminate); resuming from the last checkpoint gives the same bytes.
# Usage: faults.sh SOURCE_DIR path/to/sortednet
set -uo pipefail
src="$1" cli="$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [[ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  echo "SKIP: Fashion-MNIST is not installed"; exit 77
fi
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
recipe=(--config "$src/configs/fmnist-mlp.toml" --set data.train_limit=2048 --set data.batch_size=64
        --set train.max_steps=300 --set train.checkpoint_every=8 --set train.keep_checkpoints=3
        --set train.submodels_per_step=3 --set train.log_every=20 --set data.test_limit=100
        --set eval.submodels=width=1024 --set eval.latency_repeats=1)
train() { "$cli" train "${recipe[@]}" "$@"; }
same_as_reference() {  # same_as_reference DIR NAME
  if cmp -s "$work/ref/checkpoint.safetensors" "$1/checkpoint.safetensors"; then echo "ok   $2: identical to the uninterrupted run"
  else fail "$2: final checkpoint differs from the uninterrupted run"; fi
}

train --out "$work/ref" >"$work/ref.log" 2>&1 || { cat "$work/ref.log"; exit 1; }
kept=$(ls "$work/ref" | grep -c '^checkpoint-[0-9]*\.safetensors$')
[[ $kept -eq 3 && -f $work/ref/checkpoint-300.safetensors ]] || fail "keep_checkpoints=3 kept $kept numbered checkpoints"
cmp -s "$work/ref/checkpoint.safetensors" "$work/ref/checkpoint-300.safetensors" || fail "checkpoint.safetensors is not the newest"

# 1a. Deterministic kill points (the n-th time the point is reached).
for point in accumulate:200 optimizer-step:57 checkpoint-write:4 checkpoint-rename:6; do
  dir="$work/kill-${point%%:*}"
  SN_FAILPOINT=$point train --out "$dir" >"$dir.log" 2>&1
  rc=$?
  [[ $rc -eq 137 ]] || fail "$point: expected death by SIGKILL (137), got $rc"
  train --out "$dir" --resume >>"$dir.log" 2>&1 || { fail "$point: resume failed"; tail -3 "$dir.log"; continue; }
  same_as_reference "$dir" "killed at $point"
done

# 1b. Random kills, then resume until done.
dir="$work/random"
for attempt in 1 2 3 4 5 6; do
  delay=$(awk -v s=$RANDOM 'BEGIN { srand(s); printf "%.2f", 0.4 + rand() * 1.6 }')
  { timeout -s KILL "$delay" "$cli" train "${recipe[@]}" --out "$dir" --resume >>"$dir.log" 2>&1; } 2>/dev/null
  echo "     random kill $attempt after ${delay}s: exit $?"
done
train --out "$dir" --resume >>"$dir.log" 2>&1 || fail "random kills: final resume failed"
same_as_reference "$dir" "killed at random moments"

# 2. SIGTERM: a clean stop with a checkpoint, then resume.
dir="$work/term"
"$cli" train "${recipe[@]}" --out "$dir" >"$dir.log" 2>"$dir.err" &
pid=$!
for _ in $(seq 200); do grep -q '^step ' "$dir.log" 2>/dev/null && break; sleep 0.05; done
kill -TERM $pid
wait $pid
rc=$?
if [[ $rc -eq 143 ]] && grep -q "stopped by SIGTERM after step" "$dir.err"; then
  echo "ok   SIGTERM: $(cat "$dir.err")"
else
  fail "SIGTERM: exit $rc, stderr: $(cat "$dir.err")"
fi
train --out "$dir" --resume >>"$dir.log" 2>&1 || fail "SIGTERM: resume failed"
same_as_reference "$dir" "stopped by SIGTERM"

# 3. Corruption: one flipped byte in the data is refused; resume falls back to a kept checkpoint.
dir="$work/corrupt"
SN_FAILPOINT=accumulate:300 train --out "$dir" >"$dir.log" 2>&1
cp "$dir/checkpoint.safetensors" "$work/bad.safetensors"
# The byte lies in the first tensor's data (a weight: "model.*" sort before "optimizer.*"), which
# eval reads too; eval skips the optimizer's tensors.
header=$(od -An -t u8 -N8 "$work/bad.safetensors" | tr -d ' ')
printf '\x7f' | dd of="$work/bad.safetensors" bs=1 seek=$((8 + header + 100)) conv=notrunc status=none
mv "$work/bad.safetensors" "$dir/checkpoint.safetensors"  # replaces the name, not the kept file
if "$cli" eval --checkpoint "$dir" 2>"$work/err" >/dev/null; then fail "a corrupted checkpoint was accepted"
elif grep -q "fails its checksum" "$work/err" && [[ $(wc -l <"$work/err") -eq 1 ]]; then echo "ok   corrupted: $(cat "$work/err")"
else fail "corrupted checkpoint: unexpected error: $(cat "$work/err")"; fi
train --out "$dir" --resume >>"$dir.log" 2>"$work/err" || fail "resume past a corrupted checkpoint failed: $(cat "$work/err")"
grep -q "resuming from .*checkpoint-[0-9]*.safetensors" "$work/err" || fail "resume did not say which checkpoint it used"
same_as_reference "$dir" "resumed past a corrupted checkpoint"

# 4. Non-finite gradients.
dir="$work/nan-skip"
SN_FAILPOINT=nan-grad:40 train --out "$dir" >/dev/null 2>"$work/err" || fail "nonfinite=skip: the run failed"
if grep -q '"skipped_steps": 1,' "$dir/metrics.jsonl" && grep -q "step skipped" "$work/err"; then
  echo "ok   nonfinite=skip: $(head -1 "$work/err")"
else fail "nonfinite=skip: the skipped step was not reported"; fi
dir="$work/nan-stop"
SN_FAILPOINT=nan-grad:40 train --out "$dir" --set train.nonfinite=stop >/dev/null 2>"$work/err"
rc=$?
if [[ $rc -eq 1 && $(wc -l <"$work/err") -eq 1 ]] && grep -q "non-finite gradient at step 13 .*last good checkpoint .*(step 8)" "$work/err"; then
  echo "ok   nonfinite=stop: $(cat "$work/err")"
else fail "nonfinite=stop: exit $rc, stderr: $(cat "$work/err")"; fi

# 5. The data loader's worker thread fails.
dir="$work/loader"
SN_FAILPOINT=loader-batch:60 train --out "$dir" >/dev/null 2>"$work/err"
rc=$?
if [[ $rc -eq 1 && $(wc -l <"$work/err") -eq 1 ]] && grep -q "injected failure while making a batch" "$work/err"; then
  echo "ok   loader failure: $(cat "$work/err")"
else fail "loader failure: exit $rc, stderr: $(cat "$work/err")"; fi
train --out "$dir" --resume >/dev/null 2>&1 || fail "loader failure: resume failed"
same_as_reference "$dir" "resumed after a loader failure"

[[ $failures -eq 0 ]] && echo "all fault scenarios passed" || exit 1
