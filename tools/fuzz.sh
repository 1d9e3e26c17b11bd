#!/usr/bin/env bash
# Fuzzes every parser with libFuzzer (clang, AddressSanitizer + UBSan) for a given time each.
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s; targets: safetensors idx
#                                                      cifar config submodel cli)
# Builds into build-fuzz/, grows build-fuzz/corpus/TARGET from the seeds in tests/fuzz/corpus/,
# writes logs to build-fuzz/logs/ and any crashing input to build-fuzz/crashes/TARGET/ (turn each
# into a regression case in tests/malformed/). Runs two targets at a time. Exit status 1 if any
# target found a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(safetensors idx cifar config submodel cli)
tools/install-deps.sh --fuzz
if [[ ! -f build-fuzz/build.ninja ]]; then
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSN_FUZZ=ON \
    -DSN_CUDA=OFF -DSN_MPI=OFF -DSN_BUILD_TESTS=OFF -DSN_BUILD_BENCH=OFF >/dev/null
fi
cmake --build build-fuzz --parallel "$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}")
mkdir -p build-fuzz/logs

run_one() {
  local t="$1" seconds="$2"
  mkdir -p "build-fuzz/corpus/$t" "build-fuzz/crashes/$t"
  # No leak checks (a parser that throws mid-way may leave CLI11/JSON caches), 10 s per input,
  # at most 512 MiB in one allocation: an unbounded allocation is a finding.
  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
    "build-fuzz/bin/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -print_final_stats=1 -artifact_prefix="build-fuzz/crashes/$t/" "build-fuzz/corpus/$t" "tests/fuzz/corpus/$t" \
    >"build-fuzz/logs/$t.log" 2>&1
  local rc=$?
  local runs cov
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "build-fuzz/logs/$t.log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "build-fuzz/logs/$t.log" | tail -1 | grep -o '[0-9]*' || echo "?")
  echo "$t: ${seconds} s, $runs inputs, coverage $cov edges, corpus $(ls "build-fuzz/corpus/$t" | wc -l) files," \
       "crashes $(ls "build-fuzz/crashes/$t" | wc -l) (exit $rc)"
}
export -f run_one
printf '%s\n' "${targets[@]}" | xargs -P 2 -I{} bash -c "run_one {} $seconds"
found=$(find build-fuzz/crashes -type f | wc -l)
[[ $found -eq 0 ]] || { echo "crashing inputs: $(find build-fuzz/crashes -type f)"; exit 1; }
