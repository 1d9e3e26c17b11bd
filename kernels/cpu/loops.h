// kernels/cpu/loops.h — strided iteration shared by the CPU kernels.
//
// for_each_row() walks N operands of equal sizes but arbitrary strides: it drops size-1 dims,
// merges dims that are contiguous for every operand, and hands the innermost run to `fn` as
// (element offsets, inner strides, length), rows spread over the OpenMP threads. When every inner
// stride is 1 the kernel's loop is a plain contiguous loop the compiler vectorises.
#pragma once

#include <omp.h>

#include <array>
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace sn::cpu {

constexpr int64_t kParallelGrain = 32768;  // below this many elements, one thread

template <size_t N>
using Offsets = std::array<int64_t, N>;

template <size_t N, class Fn>
void for_each_row(const Shape& sizes, const std::array<Shape, N>& strides, Fn&& fn) {
  std::vector<int64_t> sz;
  std::array<std::vector<int64_t>, N> st;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 0) return;
    if (sizes[d] == 1) continue;
    bool merge = !sz.empty();
    for (size_t k = 0; k < N && merge; ++k) merge = st[k].back() == strides[k][d] * sizes[d];
    if (merge) {
      sz.back() *= sizes[d];
      for (size_t k = 0; k < N; ++k) st[k].back() = strides[k][d];
    } else {
      sz.push_back(sizes[d]);
      for (size_t k = 0; k < N; ++k) st[k].push_back(strides[k][d]);
    }
  }
  Offsets<N> zero{}, inner{};
  if (sz.empty()) {
    inner.fill(1);
    fn(zero, inner, int64_t(1));
    return;
  }
  const int64_t n = sz.back();
  for (size_t k = 0; k < N; ++k) inner[k] = st[k].back();
  const int64_t outer_dims = int64_t(sz.size()) - 1;
  int64_t rows = 1;
  for (int64_t d = 0; d < outer_dims; ++d) rows *= sz[d];

  // Inside a parallel region (a caller already split the work) everything runs on this thread.
  // Work too small for threads runs as a plain loop: even a one-thread OpenMP region costs a
  // team set-up, and small sub-models run thousands of these per step.
  const bool nested = omp_in_parallel();
  if (rows == 1) {  // one long run: split it into chunks
    const int64_t chunks = n >= 2 * kParallelGrain && !nested ? omp_get_max_threads() : 1;
    if (chunks == 1) return fn(zero, inner, n);
    const int64_t chunk = (n + chunks - 1) / chunks;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      int64_t begin = c * chunk, len = std::min(n, begin + chunk) - begin;
      if (len <= 0) continue;
      Offsets<N> off;
      for (size_t k = 0; k < N; ++k) off[k] = begin * inner[k];
      fn(off, inner, len);
    }
    return;
  }
  auto row = [&](int64_t r) {
    Offsets<N> off{};
    int64_t rem = r;
    for (int64_t d = outer_dims - 1; d >= 0; --d) {
      int64_t i = rem % sz[d];
      rem /= sz[d];
      for (size_t k = 0; k < N; ++k) off[k] += i * st[k][d];
    }
    fn(off, inner, n);
  };
  if (rows * n < kParallelGrain || nested) {
    for (int64_t r = 0; r < rows; ++r) row(r);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) row(r);
}

// Parallel loop over [0, n) when the total work (n * cost) is worth threads.
template <class Fn>
void parallel_for(int64_t n, int64_t cost_per_item, Fn&& fn) {
  if (n <= 1 || n * cost_per_item < kParallelGrain || omp_in_parallel()) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) fn(i);
}

// Checks that a kernel got f32 tensors on the CPU.
void check_f32(const char* op, std::initializer_list<const Tensor*> ts);
// Checks that the defined ones are [R, C] rows with a unit inner stride (the row kernels' layout).
void check_rows(const char* op, std::initializer_list<const Tensor*> ts);

}  // namespace sn::cpu
