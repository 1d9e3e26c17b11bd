// kernels/gemm_layout.h — how a strided 2-d view is a BLAS matrix (shared by the CPU and cuBLAS
// paths): row-major with leading dimension ld, or the transpose of a row-major matrix (a
// column-major view, e.g. Wᵀ of a window). Neither — a non-unit inner stride in both dims — and
// the view needs a packed copy. Nested windows are row-major matrices whose ld is the full width.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/tensor.h"

namespace sn {

struct MatrixLayout {
  bool ok = false;
  bool trans = false;
  int64_t ld = 1;
};

inline MatrixLayout matrix_layout(int64_t rows, int64_t cols, int64_t s0, int64_t s1) {
  MatrixLayout m;
  if ((cols == 1 || s1 == 1) && (rows == 1 || s0 >= std::max<int64_t>(cols, 1))) {
    m.ok = true;
    m.ld = rows == 1 ? std::max<int64_t>(cols, 1) : s0;
  } else if ((rows == 1 || s0 == 1) && (cols == 1 || s1 >= std::max<int64_t>(rows, 1))) {
    m.ok = true;
    m.trans = true;
    m.ld = cols == 1 ? std::max<int64_t>(rows, 1) : s1;
  }
  return m;
}

// The last two dims of t (a matrix, or each matrix of a batch).
inline MatrixLayout matrix_layout(const Tensor& t) {
  const int64_t o = t.dim() - 2;
  return matrix_layout(t.size(o), t.size(o + 1), t.stride(o), t.stride(o + 1));
}

}  // namespace sn
