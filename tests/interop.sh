#!/usr/bin/env bash
# tests/interop.sh — PyTorch reproduces sortednet's logits (label `train`; skipped where
# python3-torch or Fashion-MNIST is missing). Trains W1 and W2 briefly, then checks
# tools/torch_interop.py on a sub-model of each training checkpoint and on exported sub-models.
# Usage: interop.sh SOURCE_DIR path/to/sortednet
set -euo pipefail
src="$1" cli="$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
  echo "SKIP: python3-torch is not installed (tools/install-deps.sh --bench installs it)"
  exit 77
fi
if [[ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  echo "SKIP: Fashion-MNIST is not installed"
  exit 77
fi

short=(--set train.max_steps=10 --set data.train_limit=2048 --set data.test_limit=200 --set train.log_every=100
       --set eval.latency_repeats=1 --set eval.batch_size=200)
check() {  # check CHECKPOINT [predict args...]
  local ckpt="$1"
  shift
  "$cli" predict --checkpoint "$ckpt" --count 32 --out "$work/pred.safetensors" "$@" >/dev/null
  /usr/bin/python3 "$src/tools/torch_interop.py" "$ckpt" "$work/pred.safetensors" --tolerance 1e-4
}

"$cli" train --config "$src/configs/fmnist-mlp.toml" "${short[@]}" --set eval.submodels=width=1024 --out "$work/mlp" >/dev/null
check "$work/mlp" --submodel width=384
"$cli" export --checkpoint "$work/mlp" --submodel width=640 --out "$work/mlp-640.safetensors" >/dev/null
check "$work/mlp-640.safetensors"

# W2 with per-sub-model BatchNorm statistics: slices of the checkpoint and an export.
"$cli" train --config "$src/configs/fmnist-resnet.toml" "${short[@]}" --set eval.submodels=width=8/8 --set train.submodels_per_step=2 \
  --out "$work/resnet" >/dev/null
check "$work/resnet" --submodel "width=3/8,depth.s1=2,depth.s2=1,depth.s3=3"
check "$work/resnet"
"$cli" export --checkpoint "$work/resnet" --submodel "width=5/8,depth.s1=1,depth.s2=3,depth.s3=2" \
  --out "$work/resnet-sub.safetensors" >/dev/null
check "$work/resnet-sub.safetensors"
# Recalibrated BatchNorm: the export carries the sub-model's recalibrated statistics.
"$cli" train --config "$src/configs/fmnist-resnet.toml" "${short[@]}" --set eval.submodels=width=8/8 --set model.bn_stats=recalibrate \
  --set eval.recalibration_batches=2 --set train.submodels_per_step=2 --out "$work/recal" >/dev/null
"$cli" export --checkpoint "$work/recal" --submodel "width=4/8" --out "$work/recal-sub.safetensors" >/dev/null
check "$work/recal-sub.safetensors"
