#!/usr/bin/env bash
# Configures (once) and builds sortednet in build/ (Release). Extra arguments go to cmake on the
# first configure, e.g. tools/build.sh -DSN_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f build/build.ninja ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
fi
cmake --build build --parallel "$(nproc)"
