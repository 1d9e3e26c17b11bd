#!/usr/bin/env bash
# Reproduces docs/results.md for W2: one sorted run of all 216 sub-models and independent
# baselines (each sub-model trained alone with the same recipe), then the comparison table.
#   tools/results-w2.sh [EPOCHS] [TEST_LIMIT] [SORTED_RUNS]
# defaults: the full recipe's 30 epochs, all 10k test images, SORTED_RUNS=both (plain sorted and
# sorted + levers); SORTED_RUNS=levers runs only the second.
set -euo pipefail
cd "$(dirname "$0")/.."
epochs="${1:-30}"
test_limit="${2:-0}"
sorted_runs="${3:-both}"
[[ "$sorted_runs" == both || "$sorted_runs" == levers ]] || { echo "results-w2.sh: SORTED_RUNS must be both or levers" >&2; exit 2; }
out="runs/results-w2-e${epochs}"
common=(--set "train.epochs=${epochs}" --set "data.test_limit=${test_limit}" --set eval.batch_size=1000
        --set eval.latency_repeats=3)
tools/build.sh >/dev/null

# All 216 sub-models together; BatchNorm recalibrated per sub-model before evaluation.
if [[ "$sorted_runs" == both ]]; then
  build/bin/sortednet train --config configs/fmnist-resnet.toml "${common[@]}" \
    --set model.bn_stats=recalibrate --set eval.recalibration_batches=5 --out "$out/sorted"
fi
# The same with two levers: the largest sub-model's loss weighted 4× (its share of the mean loss
# becomes that of a model trained alone) and in-place distillation from it into the others.
build/bin/sortednet train --config configs/fmnist-resnet.toml "${common[@]}" \
  --set model.bn_stats=recalibrate --set eval.recalibration_batches=5 \
  --set train.largest_loss_weight=4 --set train.distill_alpha=0.5 --out "$out/sorted-llw4-kd"

# Independent baselines: the full model, the smallest, width 1/2 at full depth, full width at
# depth (1,1,1), and two in between.
baselines=("width=8/8" "width=1/8,depth.s1=1,depth.s2=1,depth.s3=1" "width=4/8" "width=8/8,depth.s1=1,depth.s2=1,depth.s3=1"
           "width=2/8,depth.s1=2,depth.s2=2,depth.s3=2" "width=6/8,depth.s1=3,depth.s2=1,depth.s3=2")
for i in "${!baselines[@]}"; do
  build/bin/sortednet train --config configs/fmnist-resnet.toml "${common[@]}" \
    --set "train.independent=${baselines[$i]}" --out "$out/independent-$i"
done
[[ "$sorted_runs" == both ]] && /usr/bin/python3 tools/results_table.py "$out"
/usr/bin/python3 tools/results_table.py "$out" --sorted sorted-llw4-kd
