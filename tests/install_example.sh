#!/usr/bin/env bash
# tests/install_example.sh — the installed package works for a research binary (label `train`):
# installs this build to a temporary prefix, configures and builds examples/custom_model against
# it with find_package(sortednet), and trains that example briefly on Fashion-MNIST.
# Usage: install_example.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src="$1" build="$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=/usr/share/datasets/fashion-mnist
if [[ ! -f $data/train-images-idx3-ubyte.gz ]]; then
  echo "SKIP: Fashion-MNIST is not installed (tools/install-deps.sh installs dataset-fashion-mnist)"
  exit 77
fi

cmake --install "$build" --prefix "$work/prefix" >"$work/install.log"
for f in include/sortednet/sortednet.h include/sortednet/core/tensor.h lib/cmake/sortednet/sortednetConfig.cmake \
         lib/cmake/sortednet/sortednetConfigVersion.cmake bin/sortednet; do
  [[ -e $work/prefix/$f ]] || { echo "FAIL: the install lacks $f"; exit 1; }
done
# Private headers stay out of the install.
if [[ -e $work/prefix/include/sortednet/kernels/cpu ]]; then echo "FAIL: backend internals installed"; exit 1; fi

cmake -S "$src/examples/custom_model" -B "$work/example" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
grep "sortednet 0.1" "$work/configure.log"
cmake --build "$work/example" >"$work/build.log" || { cat "$work/build.log"; exit 1; }

# A version this package is not compatible with is refused.
mkdir -p "$work/old"
printf 'cmake_minimum_required(VERSION 3.25)\nproject(p LANGUAGES CXX)\nfind_package(sortednet 9.0 REQUIRED)\n' \
  >"$work/old/CMakeLists.txt"
if cmake -S "$work/old" -B "$work/old/build" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null 2>&1; then
  echo "FAIL: find_package(sortednet 9.0) succeeded"; exit 1
fi

"$work/example/custom_model" --steps 40 --train-limit 4096 --test-limit 1000 --out "$work/run" | tee "$work/run.log"
rows=$(grep -c '^rank=' "$work/run.log" || true)
[[ $rows -eq 16 ]] || { echo "FAIL: expected 16 sub-model rows, got $rows"; exit 1; }
for f in checkpoint.safetensors metrics.jsonl eval.csv eval.svg; do
  [[ -s $work/run/$f ]] || { echo "FAIL: the example did not write $f"; exit 1; }
done
# It learned: the largest sub-model beats chance by far after 40 steps.
best=$(awk '$1 == "rank=64,width=256" { print $4 }' "$work/run.log")
awk -v a="$best" 'BEGIN { exit !(a > 0.5) }' || { echo "FAIL: largest sub-model accuracy $best"; exit 1; }
echo "ok: installed, built examples/custom_model against the package, trained it (largest: $best)"
