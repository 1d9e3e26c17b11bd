#!/usr/bin/env bash
# tests/mpi_train.sh — data-parallel training under mpirun (label `mpi`).
#  1. 2 ranks × batch 64 ≡ 1 process × batch 128 (synced sub-models): every parameter tensor
#     within 1e-5 relative (‖a − b‖₂ / ‖b‖₂) after 40 steps.
#  2. per-rank sampling runs, reduces the union of the ranks' windows, and matches 1 process
#     when the sampler is deterministic (enumerate_all: every rank draws the same); with a
#     random sampler the ranks draw different sub-models, so more bytes travel than synced.
#  3. Resume across a change of rank count: 2 ranks → killed → 1 process, and 1 → 2.
#  4. A killed rank ends the job within 60 s with a non-zero status; the checkpoint stays intact.
#     A rank that hangs makes the others give up after train.comm_timeout_s. An error on one
#     rank ends the job at once, not after the deadline.
#  5. The reduced bytes per step follow the trained windows (full vs smallest W2 sub-model).
# Usage: mpi_train.sh SOURCE_DIR path/to/sortednet path/to/compare_checkpoints
set -uo pipefail
src="$1" cli="$2" compare="$3"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
mpi=(mpirun --oversubscribe --allow-run-as-root)
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
recipe=(--config "$src/configs/fmnist-mlp.toml" --set data.train_limit=4096 --set data.batch_size=128
        --set train.max_steps=40 --set train.submodels_per_step=3 --set train.checkpoint_every=10
        --set data.test_limit=200 --set eval.submodels=width=1024 --set eval.latency_repeats=1 --set train.log_every=10)
same() {  # same NAME A B
  if out=$("$compare" "$2/checkpoint.safetensors" "$3/checkpoint.safetensors" 1e-5); then echo "ok   $1: $out"
  else fail "$1: $out"; fi
}

"$cli" train "${recipe[@]}" --out "$work/one" >"$work/one.log" 2>&1 || { cat "$work/one.log"; exit 1; }
"${mpi[@]}" -np 2 "$cli" train "${recipe[@]}" --out "$work/two" >"$work/two.log" 2>&1 || { cat "$work/two.log"; exit 1; }
grep -q "data parallel on 2 ranks (mpi, synced, 64 examples per rank" "$work/two.log" || fail "2-rank run did not say so"
same "2 ranks x 64 = 1 x 128 (synced)" "$work/one" "$work/two"

det=(--set train.sampler=enumerate_all)
"$cli" train "${recipe[@]}" "${det[@]}" --out "$work/one-enum" >/dev/null 2>&1
"${mpi[@]}" -np 2 "$cli" train "${recipe[@]}" "${det[@]}" --set train.data_parallel=per-rank --out "$work/two-enum" \
  >"$work/two-enum.log" 2>&1 || { cat "$work/two-enum.log"; exit 1; }
same "2 ranks per-rank (deterministic sampler) = 1 process" "$work/one-enum" "$work/two-enum"
"${mpi[@]}" -np 2 "$cli" train "${recipe[@]}" --set train.data_parallel=per-rank --out "$work/two-per-rank" \
  >"$work/per-rank.log" 2>&1 && echo "ok   per-rank with the sandwich sampler trains" || fail "per-rank sandwich run failed"

# Uniform draws of one of W1's 8 widths: per-rank ranks draw their own and reduce the union of
# two, whose expected size is ~1.4x one draw's (the larger of two widths); synced ranks reduce one.
one_sub=(--set train.sampler=uniform --set train.submodels_per_step=1 --set train.log_every=40)
mean_bytes() { grep -o '"reduced_bytes_per_step": [0-9]*' "$1/metrics.jsonl" | tail -1 | grep -o '[0-9]*$'; }
"${mpi[@]}" -np 2 "$cli" train "${recipe[@]}" "${one_sub[@]}" --out "$work/uni-synced" >/dev/null 2>&1
"${mpi[@]}" -np 2 "$cli" train "${recipe[@]}" "${one_sub[@]}" --set train.data_parallel=per-rank \
  --out "$work/uni-per-rank" >/dev/null 2>&1
synced_bytes=$(mean_bytes "$work/uni-synced") per_rank_bytes=$(mean_bytes "$work/uni-per-rank")
if [[ -n "$synced_bytes" && -n "$per_rank_bytes" && $((per_rank_bytes * 100)) -gt $((synced_bytes * 115)) ]]; then
  echo "ok   per-rank draws differ across ranks: $per_rank_bytes bytes per step against $synced_bytes synced"
else fail "per-rank reduced ${per_rank_bytes:-?} bytes per step, synced ${synced_bytes:-?}: the ranks drew the same"; fi
# ... and a per-rank run killed in step 16 (last checkpoint: 10) and resumed draws on from where each rank's stream was.
"${mpi[@]}" -np 2 -x SN_FAILPOINT=accumulate:16 "$cli" train "${recipe[@]}" "${one_sub[@]}" \
  --set train.data_parallel=per-rank --out "$work/uni-resumed" >/dev/null 2>&1
"${mpi[@]}" -np 2 "$cli" train "${recipe[@]}" "${one_sub[@]}" --set train.data_parallel=per-rank \
  --out "$work/uni-resumed" --resume >/dev/null 2>&1 || fail "per-rank resume failed"
same "per-rank, killed in step 16, resumed on 2 ranks" "$work/uni-per-rank" "$work/uni-resumed"

# Resume across rank counts: killed at step 15 (the 45th sub-model pass), resumed elsewhere.
"${mpi[@]}" -np 2 -x SN_FAILPOINT=accumulate:45 "$cli" train "${recipe[@]}" --out "$work/2to1" >/dev/null 2>&1
"$cli" train "${recipe[@]}" --out "$work/2to1" --resume >/dev/null 2>&1 || fail "1-process resume of a 2-rank run failed"
same "2 ranks, killed at step 15, resumed on 1" "$work/one" "$work/2to1"
{ SN_FAILPOINT=accumulate:45 "$cli" train "${recipe[@]}" --out "$work/1to2" >/dev/null 2>&1; } 2>/dev/null
"${mpi[@]}" -np 2 "$cli" train "${recipe[@]}" --out "$work/1to2" --resume >/dev/null 2>&1 || fail "2-rank resume failed"
same "1 process, killed at step 15, resumed on 2 ranks" "$work/one" "$work/1to2"

# A rank dies at step 25 (rank 1 only): the job must end, non-zero, within 60 s.
start=$(date +%s)
timeout 120 "${mpi[@]}" -np 1 "$cli" train "${recipe[@]}" --out "$work/dead" : \
  -np 1 -x SN_FAILPOINT=accumulate:75 "$cli" train "${recipe[@]}" --out "$work/dead" >"$work/dead.log" 2>&1
rc=$?
took=$(($(date +%s) - start))
if [[ $rc -ne 0 && $rc -ne 124 && $took -le 60 ]]; then echo "ok   a killed rank ended the job in ${took}s (exit $rc)"
else fail "killed rank: exit $rc after ${took}s"; fi
"$cli" eval --checkpoint "$work/dead" --submodels width=128 >/dev/null 2>&1 && echo "ok   the last checkpoint loads" \
  || fail "the checkpoint of the killed job does not load"

# A rank that hangs: the other gives up after train.comm_timeout_s and ends the job.
start=$(date +%s)
timeout 120 "${mpi[@]}" -np 1 "$cli" train "${recipe[@]}" --set train.comm_timeout_s=5 --out "$work/stall" : \
  -np 1 -x SN_FAILPOINT=stall:30 "$cli" train "${recipe[@]}" --set train.comm_timeout_s=5 --out "$work/stall" \
  >"$work/stall.log" 2>&1
rc=$?
took=$(($(date +%s) - start))
if [[ $rc -ne 0 && $rc -ne 124 && $took -le 60 ]] && grep -q "waited 5 s for the other ranks" "$work/stall.log"; then
  echo "ok   a stalled rank ended the job in ${took}s (exit $rc): $(grep -m1 'waited' "$work/stall.log")"
else fail "stalled rank: exit $rc after ${took}s"; tail -5 "$work/stall.log"; fi

# An error on rank 1 only (a batch it cannot make): the job ends now, not after the 100 s deadline.
start=$(date +%s)
timeout 120 "${mpi[@]}" -np 1 "$cli" train "${recipe[@]}" --set train.comm_timeout_s=100 --out "$work/error" : \
  -np 1 -x SN_FAILPOINT=loader-batch:20 "$cli" train "${recipe[@]}" --set train.comm_timeout_s=100 --out "$work/error" \
  >"$work/error.log" 2>&1
rc=$?
took=$(($(date +%s) - start))
if [[ $rc -ne 0 && $rc -ne 124 && $took -le 60 ]] && grep -q "injected failure" "$work/error.log"; then
  echo "ok   an error on one rank ended the job in ${took}s (exit $rc)"
else fail "error on one rank: exit $rc after ${took}s"; tail -5 "$work/error.log"; fi

# Bytes reduced per step follow the window: W2's full model vs its smallest sub-model.
w2=(--config "$src/configs/fmnist-resnet.toml" --set data.train_limit=512 --set data.batch_size=32 --set train.max_steps=2
    --set train.log_every=2 --set data.test_limit=32 --set eval.submodels=width=1/8,depth.s1=1,depth.s2=1,depth.s3=1
    --set eval.latency_repeats=1)
for sub in "width=8/8" "width=1/8,depth.s1=1,depth.s2=1,depth.s3=1"; do
  "${mpi[@]}" -np 2 "$cli" train "${w2[@]}" --set "train.independent=$sub" --out "$work/bytes" >/dev/null 2>&1
  bytes=$(grep -o '"reduced_bytes_per_step": [0-9]*' "$work/bytes/metrics.jsonl" | tail -1 | grep -o '[0-9]*$')
  echo "     W2 $sub: $bytes bytes reduced per step"
  rm -rf "$work/bytes"
done

[[ $failures -eq 0 ]] && echo "all data-parallel checks passed" || exit 1
