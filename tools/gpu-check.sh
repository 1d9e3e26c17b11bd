#!/usr/bin/env bash
# The GPU check: run from the repository root on a machine with an NVIDIA GPU and CUDA 13 but none
# of the Debian -dev packages. Builds the CUDA targets into build-gpu/ against .gpu-deps/ (made by
# tools/gpu-deps.sh elsewhere and copied along), runs the `cuda` ctest suites, bench_gpu and the
# W2 training-step comparison with PyTorch where those exist, W2 and W4 trained briefly on the
# GPU, and prints a short table last.
# Every phase has a time limit and the script goes on to the table when one fails; it exits
# non-zero if any failed. Logs: $OUT when set, else build-gpu/logs. docs/performance-gpu.md.
#
#   tools/gpu-check.sh                   everything (about 8 minutes at most)
#   tools/gpu-check.sh --configure-only  detection and the cmake configure step only
#
# Environment: SN_GPU_CHECK_SKIP (phases to leave out, e.g. "bench train"),
# SN_GPU_CHECK_JOBS (build jobs; default: all cores), SN_GPU_CHECK_ARCH (CUDA
# architecture; default: the GPU's compute capability, else 90), SN_GPU_CHECK_BUDGET (seconds for
# the whole script, default 470), SN_GPU_CHECK_PYTHON (the interpreter with PyTorch).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$PWD
kit=$root/.gpu-deps
build=$root/build-gpu
start=$(date +%s)
budget=${SN_GPU_CHECK_BUDGET:-470}

configure_only=0
for flag in "$@"; do
  case "$flag" in
    --configure-only) configure_only=1 ;;
    *) echo "gpu-check.sh: unknown flag '$flag' (--configure-only)" >&2; exit 2 ;;
  esac
done
if [[ ! -d "$kit/lib/x86_64-linux-gnu/cmake" ]]; then
  echo "gpu-check.sh: .gpu-deps/ is missing: run tools/gpu-deps.sh (on the Debian build machine) and copy .gpu-deps/ here first" >&2
  exit 2
fi

# ---- phases: each runs under `timeout`, its result is recorded, the script goes on ----
phases=""
failed=0
note() { echo "gpu-check.sh: $*"; }
record() {  # name status seconds
  phases+="$1=$2:${3}s "
  [[ "$2" == ok || "$2" == skipped* ]] || failed=1
}
# Seconds a phase may take: its own limit, cut to what is left of the budget (10 s kept for the table).
limit() {
  local left=$((budget - ($(date +%s) - start) - 10))
  ((left < $1)) && echo "$left" || echo "$1"
}
run_phase() {  # name limit log command...
  local name=$1 own=$2 lim log=$3 t0 rc
  if [[ " ${SN_GPU_CHECK_SKIP:-} " == *" $name "* ]]; then
    record "$name" "skipped(asked)" 0
    return 1
  fi
  lim=$(limit "$2")
  shift 3
  if ((lim < 5)); then
    note "$name: skipped, out of time"
    record "$name" "skipped(time)" 0
    return 1
  fi
  note "$name (limit ${lim}s, log $log)"
  t0=$(date +%s)
  timeout -k 10 "$lim" "$@" >"$log" 2>&1
  rc=$?
  local dt=$(($(date +%s) - t0))
  if ((rc == 0)); then
    record "$name" ok "$dt"
  elif ((rc == 124 || rc == 137)) && ((lim < own)); then
    # Cut short by the session's budget, not by its own limit: unfinished, not failed.
    note "$name: stopped after ${lim}s, the rest of the budget"
    tail -5 "$log"
    record "$name" "skipped(time:${lim}s)" "$dt"
  elif ((rc == 124 || rc == 137)); then
    note "$name: timed out after ${lim}s"
    tail -5 "$log"
    record "$name" TIMEOUT "$dt"
  else
    note "$name: failed (exit $rc)"
    tail -15 "$log"
    record "$name" "FAIL($rc)" "$dt"
  fi
  return $rc
}

# ---- the build directory and the logs ----
if [[ -f "$build/CMakeCache.txt" ]]; then
  # A cache from another checkout path or generator cannot be reused.
  home=$(grep -E '^CMAKE_HOME_DIRECTORY:' "$build/CMakeCache.txt" | cut -d= -f2-)
  if [[ "$home" != "$root" ]]; then
    note "build-gpu/ was configured for $home: starting afresh"
    rm -rf "$build"
  fi
fi
log=${OUT:-$build/logs}
mkdir -p "$log"
extra=()
libs=()
toolchain="no nvcc"

# ---- the GPU ----
gpu="none found (no nvidia-smi)"
arch=${SN_GPU_CHECK_ARCH:-}
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi >"$log/nvidia-smi.txt" 2>&1
  gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
  [[ -n "$gpu" ]] || gpu="nvidia-smi found no GPU"
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
  [[ -z "$arch" && "$cap" =~ ^[0-9]+$ ]] && arch=$cap
  driver_cuda=$(grep -o 'CUDA Version: [0-9.]*' "$log/nvidia-smi.txt" | head -1 | awk '{print $3}')
  [[ -n "$driver_cuda" ]] && gpu+=" (driver supports CUDA $driver_cuda)"
  if [[ -n "$driver_cuda" && "${driver_cuda%%.*}" -lt 13 ]]; then
    note "the driver supports CUDA $driver_cuda only: CUDA 13 binaries will not run"
  fi
fi
arch=${arch:-90}
note "GPU: $gpu; CUDA architecture $arch"

# ---- CUDA, cuBLAS, cuDNN, NCCL, MPI, BLAS ----
nvcc=""
for c in "${CUDACXX:-}" /usr/local/cuda/bin/nvcc "$(command -v nvcc 2>/dev/null)"; do
  [[ -n "$c" && -x "$c" ]] && { nvcc=$c; break; }
done
cuda_root=""
cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch")
if [[ -n "$nvcc" ]]; then
  cuda_root=$(cd "$(dirname "$nvcc")/.." && pwd)
  cmake_args+=(-DSN_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc")
  toolchain="nvcc $("$nvcc" --version | grep -o 'release [0-9.]*' | cut -d' ' -f2) ($cuda_root)"
else
  note "no nvcc (CUDACXX, /usr/local/cuda/bin, PATH): building without CUDA"
  cmake_args+=(-DSN_CUDA=OFF)
  record cuda "FAIL(no-nvcc)" 0
fi

python=${SN_GPU_CHECK_PYTHON:-}
if [[ -z "$python" ]]; then
  for p in /opt/torch/.venv/bin/python3 python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' >/dev/null 2>&1; then python=$p; break; fi
  done
fi
# The folder of a pip package nvidia.<name> (cuDNN, NCCL, cuBLAS wheels), or nothing.
pip_nvidia() {
  local d=""
  [[ -n "$python" ]] &&
    d=$("$python" -c "import importlib,sys; m=importlib.import_module('nvidia.$1'); print(list(m.__path__)[0])" 2>/dev/null)
  if [[ -z "$d" ]]; then
    for g in /opt/torch/.venv/lib/python3*/site-packages/nvidia/"$1"; do [[ -d "$g" ]] && d=$g; done
  fi
  echo "$d"
}
# The first existing file among the arguments.
first() { for f in "$@"; do [[ -e "$f" ]] && { echo "$f"; return; }; done; }

runtime_dirs=("$kit/lib/x86_64-linux-gnu")
if [[ -n "$cuda_root" ]]; then
  for d in "$cuda_root/lib64" "$cuda_root/targets/x86_64-linux/lib"; do [[ -d "$d" ]] && runtime_dirs+=("$d"); done
  # cuBLAS: in the toolkit, else a pip wheel (then named to CMake's FindCUDAToolkit by hand).
  cublas=$(first "$cuda_root"/lib64/libcublas.so "$cuda_root"/targets/x86_64-linux/lib/libcublas.so)
  if [[ -n "$cublas" ]]; then
    libs+=("cuBLAS: toolkit")
    note "cuBLAS: $cublas"
  else
    cublas_dir=""
    for n in cublas cu13; do
      d=$(pip_nvidia "$n")
      [[ -n "$d" ]] && [[ -n "$(first "$d"/lib/libcublas.so*)" ]] && { cublas_dir=$d; break; }
    done
    if [[ -n "$cublas_dir" ]]; then
      lib=$(first "$cublas_dir"/lib/libcublas.so "$cublas_dir"/lib/libcublas.so.13 "$cublas_dir"/lib/libcublas.so.*)
      lt=$(first "$cublas_dir"/lib/libcublasLt.so "$cublas_dir"/lib/libcublasLt.so.13 "$cublas_dir"/lib/libcublasLt.so.*)
      cmake_args+=(-DCUDA_cublas_LIBRARY="$lib" -DCUDA_cublasLt_LIBRARY="$lt"
                   -DCMAKE_CXX_FLAGS="-isystem $cublas_dir/include" -DCMAKE_CUDA_FLAGS="-isystem $cublas_dir/include")
      runtime_dirs+=("$cublas_dir/lib")
      libs+=("cuBLAS: pip")
      note "cuBLAS: $lib"
    else
      libs+=("cuBLAS: NOT FOUND")
      note "cuBLAS not found (in $cuda_root or pip nvidia.cublas): targets that need it will fail"
    fi
  fi
  # cuDNN: the toolkit folder, else the pip wheel (find_library does not match libcudnn.so.9).
  cudnn_h=$(first "$cuda_root/include/cudnn.h")
  cudnn_lib=$(first "$cuda_root"/lib64/libcudnn.so "$cuda_root"/lib/libcudnn.so "$cuda_root"/lib64/libcudnn.so.9 "$cuda_root"/lib/libcudnn.so.9)
  if [[ -z "$cudnn_h" || -z "$cudnn_lib" ]]; then
    d=$(pip_nvidia cudnn)
    cudnn_h=$( [[ -n "$d" ]] && first "$d/include/cudnn.h")
    cudnn_lib=$( [[ -n "$d" ]] && first "$d"/lib/libcudnn.so "$d"/lib/libcudnn.so.9)
  fi
  if [[ -n "$cudnn_h" && -n "$cudnn_lib" ]]; then
    cmake_args+=(-DSN_CUDNN=ON -DSN_CUDNN_INCLUDE="$(dirname "$cudnn_h")" -DSN_CUDNN_LIB="$cudnn_lib")
    runtime_dirs+=("$(dirname "$cudnn_lib")")
    libs+=("cuDNN: $(basename "$cudnn_lib")")
    note "cuDNN: $cudnn_lib"
  else
    cmake_args+=(-DSN_CUDNN=OFF)
    libs+=("cuDNN: none")
    note "cuDNN: not found, building without"
  fi
  # NCCL: likewise, optional.
  nccl_h=$(first "$cuda_root/include/nccl.h")
  nccl_lib=$(first "$cuda_root"/lib64/libnccl.so "$cuda_root"/lib/libnccl.so "$cuda_root"/lib64/libnccl.so.2 "$cuda_root"/lib/libnccl.so.2)
  if [[ -z "$nccl_h" || -z "$nccl_lib" ]]; then
    d=$(pip_nvidia nccl)
    nccl_h=$( [[ -n "$d" ]] && first "$d/include/nccl.h")
    nccl_lib=$( [[ -n "$d" ]] && first "$d"/lib/libnccl.so "$d"/lib/libnccl.so.2)
  fi
  if [[ -n "$nccl_h" && -n "$nccl_lib" ]]; then
    cmake_args+=(-DSN_NCCL=ON -DSN_NCCL_INCLUDE="$(dirname "$nccl_h")" -DSN_NCCL_LIB="$nccl_lib")
    runtime_dirs+=("$(dirname "$nccl_lib")")
    libs+=("NCCL: $(basename "$nccl_lib")")
    note "NCCL: $nccl_lib"
  else
    cmake_args+=(-DSN_NCCL=OFF)
    libs+=("NCCL: none")
    note "NCCL: not found, building without"
  fi
else
  cmake_args+=(-DSN_CUDNN=OFF -DSN_NCCL=OFF)
fi
if command -v mpicxx >/dev/null 2>&1; then cmake_args+=(-DSN_MPI=AUTO); else cmake_args+=(-DSN_MPI=OFF); fi
if [[ -f /usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so && -f /usr/include/x86_64-linux-gnu/openblas-openmp/cblas.h ]]; then
  cmake_args+=(-DSN_BLAS=ON)
else
  cmake_args+=(-DSN_BLAS=OFF)
fi

# The kit, and nothing from /usr where the kit has a package (the toolkit lives in /usr/local/cuda;
# a toolkit under /usr itself keeps /usr searchable). Each package also named directly, so that
# a compiler without Debian's lib/x86_64-linux-gnu convention finds them too.
cmake_args+=(-DCMAKE_PREFIX_PATH="$kit"
             -DGTest_DIR="$kit/lib/x86_64-linux-gnu/cmake/GTest"
             -Dbenchmark_DIR="$kit/lib/x86_64-linux-gnu/cmake/benchmark"
             -Dtomlplusplus_DIR="$kit/lib/x86_64-linux-gnu/cmake/tomlplusplus"
             -Dnlohmann_json_DIR="$kit/share/cmake/nlohmann_json"
             -DCLI11_DIR="$kit/share/cmake/CLI11"
             -DZLIB_INCLUDE_DIR="$kit/include"
             -DZLIB_LIBRARY="$kit/lib/x86_64-linux-gnu/libz.a")
[[ "$cuda_root" == /usr || "$cuda_root" == /usr/lib/* ]] || cmake_args+=(-DCMAKE_IGNORE_PREFIX_PATH=/usr)
# Shared libraries the binaries need at run time (the kit's, the toolkit's, pip wheels'): in their
# build RUNPATH, and in LD_LIBRARY_PATH for what CMake does not put there (imported UNKNOWN targets).
unique=()
for d in "${runtime_dirs[@]}"; do
  real=$(readlink -f "$d")
  [[ " ${unique[*]} " == *" $real "* ]] || unique+=("$real")
done
runtime_dirs=("${unique[@]}")
rpath=$(IFS=';'; echo "${runtime_dirs[*]}")
cmake_args+=(-DCMAKE_BUILD_RPATH="$rpath")
export LD_LIBRARY_PATH="$(IFS=':'; echo "${runtime_dirs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# cmake >= 3.25 and ninja: the system's, else those of the PyTorch environment (appended to PATH,
# so its python does not shadow the system's), else Unix Makefiles.
version_ok() { [[ "$(printf '%s\n3.25\n' "$1" | sort -V | head -1)" == 3.25 ]]; }
venv_bin=/opt/torch/.venv/bin
if ! version_ok "$(cmake --version 2>/dev/null | head -1 | awk '{print $3}')" && [[ -x $venv_bin/cmake ]] &&
   version_ok "$("$venv_bin/cmake" --version 2>/dev/null | head -1 | awk '{print $3}')"; then
  note "using $venv_bin/cmake (the system cmake is missing or older than 3.25)"
  export PATH="$venv_bin:$PATH"
fi
if ! command -v ninja >/dev/null 2>&1 && [[ -x $venv_bin/ninja ]]; then export PATH="$PATH:$venv_bin"; fi
if ! command -v ninja >/dev/null 2>&1; then
  note "no ninja: using Unix Makefiles"
  cmake_args[1]="Unix Makefiles"
fi
# The kit's package files were written by CMake 3.25; CMake 4 wants old policy floors raised.
cmake_args+=(-DCMAKE_POLICY_VERSION_MINIMUM=3.5)
if [[ -f "$build/CMakeCache.txt" ]] && ! grep -q "^CMAKE_GENERATOR:INTERNAL=${cmake_args[1]}\$" "$build/CMakeCache.txt"; then
  rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
fi
cmake_version=$(cmake --version 2>/dev/null | head -1 | awk '{print $3}')
extra+=("$toolchain, cmake ${cmake_version:-missing}, $(gcc --version 2>/dev/null | head -1 | sed 's/ (.*)//'), $(nproc) cores")
extra+=("$(IFS=','; echo "${libs[*]:-no CUDA libraries}" | sed 's/,/, /g'), torch python: ${python:-none}")
printf '%q ' cmake -S "$root" -B "$build" "${cmake_args[@]}" >"$log/cmake-command.txt"
echo >>"$log/cmake-command.txt"

# ---- configure ----
run_phase configure 90 "$log/configure.log" cmake -S "$root" -B "$build" "${cmake_args[@]}"
configured=$?
grep -E 'sortednet: BLAS=' "$log/configure.log" | sed 's/^-- //' | head -1 | while read -r l; do note "$l"; done
backends=$(grep -oE 'sortednet: BLAS=.*' "$log/configure.log" | head -1 | sed 's/^sortednet: //')
[[ -n "$backends" ]] && extra+=("backends: $backends")

has_target() { grep -qE "^(\\.\\.\\. )?$1([: ]|\$)" "$log/targets.txt" 2>/dev/null; }
table() {
  local args=(--gpu "$gpu" --phases "$phases")
  [[ -n "${tests_ran:-}" ]] && args+=(--ctest-log "$log/ctest.log")
  [[ -n "${bench_ran:-}" ]] && args+=(--bench-json "$log/bench_gpu.json")
  [[ -n "${compare_ran:-}" ]] && args+=(--compare-log "$log/compare.log")
  [[ -n "${train_ran:-}" ]] && args+=(--train-log "$log/train.log")
  [[ -n "${conv_ran:-}" ]] && args+=(--conv-log "$log/conv.log")
  [[ -n "${lm_ran:-}" ]] && args+=(--lm-log "$log/lm.log")
  for e in "${extra[@]}"; do args+=(--extra "$e"); done
  local py=python3
  command -v python3 >/dev/null 2>&1 || py=${python:-python3}
  "$py" "$root/tools/gpu_table.py" "${args[@]}" | tee "$log/summary.txt"
}

if [[ $configure_only -eq 1 ]]; then
  echo
  table
  exit $failed
fi
[[ "$gpu" == "none found"* || "$gpu" == "nvidia-smi found no GPU" ]] && record gpu "FAIL(none)" 0

# ---- build: the CLI, every target with `cuda` ctest label, bench_gpu, bench_train_step ----
targets=()
if [[ $configured -eq 0 ]]; then
  cmake --build "$build" --target help >"$log/targets.txt" 2>&1
  wanted=(sortednet_cli test_cuda)
  # sn_add_test(<target> cuda ...) in tests/CMakeLists.txt: every suite labelled cuda.
  while read -r t; do wanted+=("$t"); done < <(sed -nE 's/^\s*sn_add_test\(\s*([A-Za-z0-9_]+)\s+cuda\b.*/\1/p' tests/CMakeLists.txt)
  wanted+=(bench_gpu)
  compare_ok=0
  if [[ -n "$python" ]] && "$python" bench/compare/train_step_compare.py --help 2>/dev/null | grep -q -- '--device'; then
    compare_ok=1
    wanted+=(bench_train_step)
  fi
  for t in "${wanted[@]}"; do
    if has_target "$t"; then
      [[ " ${targets[*]} " == *" $t "* ]] || targets+=("$t")
    fi
  done
  jobs=${SN_GPU_CHECK_JOBS:-$(nproc)}
  note "targets: ${targets[*]}"
  run_phase build 240 "$log/build.log" cmake --build "$build" --parallel "$jobs" --target "${targets[@]}"
else
  record build "skipped(configure)" 0
fi

# ---- tests: ctest -L cuda ----
if [[ $configured -eq 0 ]]; then
  # Runs even after a failed build: suites that did build still say something.
  tests_ran=1
  run_phase tests 120 "$log/ctest.log" bash -c "cd '$build' && ctest -L cuda --output-on-failure --timeout 60 -j 4"
  cp "$build/Testing/Temporary/LastTest.log" "$log/ctest-LastTest.log" 2>/dev/null
  # The cuda suites skip themselves where no device is visible: with a GPU here, a skip is a failure.
  skips=$(grep -c '(Skipped)' "$log/ctest.log")
  if [[ "$gpu" != "none found"* && "$gpu" != "nvidia-smi found no GPU" && "${skips:-0}" -gt 0 ]]; then
    record skips "FAIL($skips)" 0
  fi
else
  record tests "skipped(configure)" 0
fi

# ---- bench_gpu (Google Benchmark JSON) ----
bench_ran=""
if [[ -x "$build/bin/bench_gpu" ]]; then
  bench_ran=1
  rm -f "$log/bench_gpu.json"
  run_phase bench 150 "$log/bench_gpu.log" "$build/bin/bench_gpu" \
    --benchmark_out="$log/bench_gpu.json" --benchmark_out_format=json
  errors=$(grep -c '"error_occurred": true' "$log/bench_gpu.json" 2>/dev/null)
  [[ "${errors:-0}" -gt 0 ]] && record bench-errors "FAIL($errors)" 0
elif [[ $configured -eq 0 ]] && has_target bench_gpu; then
  record bench "FAIL(not-built)" 0
else
  record bench "skipped(no-target)" 0
fi

# ---- W2 training step against PyTorch, both on the GPU ----
if [[ "${compare_ok:-0}" -eq 1 && -x "$build/bin/bench_train_step" ]]; then
  help=$("$python" bench/compare/train_step_compare.py --help 2>/dev/null)
  cargs=(--build "$build" --device cuda)
  [[ "$help" == *--python* ]] && cargs+=(--python "$python")
  [[ "$help" == *--rounds* ]] && cargs+=(--rounds 1)
  [[ "$help" == *--min-time* ]] && cargs+=(--min-time 0.5)
  [[ "$help" == *--only* ]] && cargs+=(--only resnet_full,resnet_half,resnet_smallest,mlp_full)
  compare_ran=1
  run_phase compare 100 "$log/compare.log" "$python" bench/compare/train_step_compare.py "${cargs[@]}"
elif [[ "${compare_ok:-0}" -eq 1 ]]; then
  record compare "FAIL(no-bench_train_step)" 0
else
  record compare "skipped(no --device cuda or no torch)" 0
fi

# ---- the W2 step with each convolution path: cuDNN (default) and im2col + cuBLAS ----
conv_ran=""
if [[ -x "$build/bin/bench_train_step" ]]; then
  conv_ran=1
  run_phase conv 40 "$log/conv.log" bash -c "for a in cudnn im2col; do echo \"== conv \$a\"; \
    SN_CUDA_CONV=\$a SN_BENCH_DEVICE=cuda '$build/bin/bench_train_step' --benchmark_filter=resnet \
    --benchmark_min_time=0.3 2>&1 | grep -E '^step/'; done"
fi

# ---- W2 trained on the GPU: one epoch of the demo recipe, every sub-model evaluated ----
train_ran=""
if [[ -x "$build/bin/sortednet" && -d "$kit/data/fashion-mnist" ]]; then
  train_ran=1
  rm -rf "$build/train-w2"
  run_phase train 120 "$log/train.log" "$build/bin/sortednet" train --config configs/fmnist-resnet-demo.toml \
    --device cuda --out "$build/train-w2" --set data.dir="$kit/data/fashion-mnist" --set train.max_steps=0 \
    --set data.test_limit=2000 --set train.log_every=100
elif [[ -x "$build/bin/sortednet" ]]; then
  record train "skipped(no data in .gpu-deps)" 0
fi

# ---- W4 on the GPU: SoFT steps, every exit evaluated, self-speculative decoding (same output) ----
lm_ran=""
if [[ -x "$build/bin/sortednet" && -d "$kit/data/fortunes" ]]; then
  lm_ran=1
  rm -rf "$build/train-w4"
  run_phase lm 60 "$log/lm.log" bash -c "'$build/bin/sortednet' train --config configs/fortunes-llama.toml \
    --device cuda --out '$build/train-w4' --set data.dir='$kit/data/fortunes' --set train.max_steps=60 \
    --set train.precision=fp32 \
    --set train.log_every=20 && '$build/bin/sortednet' generate --checkpoint '$build/train-w4' --prompt 'The ' \
    --max-new 64 --speculative --draft-exit 2"
elif [[ -x "$build/bin/sortednet" ]]; then
  record lm "skipped(no corpus in .gpu-deps)" 0
fi

echo
table
exit $failed
