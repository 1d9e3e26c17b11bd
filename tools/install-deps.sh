#!/usr/bin/env bash
# Installs the Debian 12 packages sortednet needs, skipping what is already there.
#   tools/install-deps.sh          build + tests, and the data sets they train on (Fashion-MNIST, fortunes)
#   tools/install-deps.sh --demo   the same (the demo needs nothing more)
#   tools/install-deps.sh --bench  also the peer (PyTorch CPU) for benchmark comparisons
#   tools/install-deps.sh --fuzz   also clang with libFuzzer and libomp (tools/fuzz.sh)
set -euo pipefail

packages=(cmake ninja-build g++ pkg-config libopenblas-openmp-dev libgtest-dev libbenchmark-dev zlib1g-dev
          nlohmann-json3-dev libtomlplusplus-dev libcli11-dev dataset-fashion-mnist libopenmpi-dev openmpi-bin
          fortunes)  # fortunes: the text the W4 language model (configs/fortunes-llama.toml) trains on
for flag in "$@"; do
  case "$flag" in
    --demo) ;;  # the data set is always installed now; kept for compatibility
    --bench) packages+=(python3-torch python3-numpy) ;;
    --fuzz) packages+=(clang libclang-rt-14-dev libomp-dev) ;;
    *) echo "install-deps.sh: unknown flag '$flag' (--demo, --bench, --fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing: ${missing[*]}"
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
