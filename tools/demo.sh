#!/usr/bin/env bash
# The main job: installs what is missing, builds, and trains the default recipe — W2, a ResNet
# holding 216 nested sub-models, on Fashion-MNIST (configs/fmnist-resnet-demo.toml) — then
# evaluates every sub-model. Outputs land in runs/demo/ (checkpoint.safetensors, metrics.jsonl,
# eval.csv, eval.svg). Extra arguments go to `sortednet train`, e.g. --set train.max_steps=50.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --demo
tools/build.sh
# Each demo starts afresh (train refuses a folder that holds a run), unless asked to --resume it.
[[ " $* " == *" --resume "* ]] || rm -rf runs/demo
build/bin/sortednet train --config configs/fmnist-resnet-demo.toml --out runs/demo "$@"
