#!/usr/bin/env bash
# Builds the CPU code and tests with AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/)
# and runs the test suites under them; any report fails the run. The long script tests (crash
# injection, install, PyTorch interop) and the mpirun jobs (OpenMPI's own allocations would trip
# the leak checker) run in the plain build only.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
if [[ ! -f build-asan/build.ninja ]]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSN_SANITIZE=ON -DSN_CUDA=OFF -DSN_MPI=OFF \
    -DSN_BUILD_BENCH=OFF >/dev/null
fi
cmake --build build-asan --parallel "$(nproc)"
cd build-asan
# allocator_may_return_null: a 4 PiB request must fail as an sn::Error (tested), not abort.
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --output-on-failure --timeout 1200 -j "$(nproc)" -E "^(faults|torch_interop|install_example|mpi_.*)$"
