// kernels/cpu/gemm_invariant.h — matrix products whose every output is one fixed sum: the same
// bits whatever the number of rows or columns computed with it, and whatever zero terms follow
// its last one.
//
// Self-speculative decoding verifies k drafted positions in one pass, while plain decoding runs
// one position at a time; greedy output is the same token for token only if each position's
// logits are the same bits both ways. BLAS libraries choose kernels by shape (OpenBLAS's
// small-matrix path for 2–4 rows, packing above 16, SGEMV for one row on some CPUs), and the
// attention products of a longer cache sum over more (masked, zero) terms. While a
// RowInvariantProducts guard is alive, gemm_rowmajor computes A·Bᵀ on the skinny kernel where the
// CPU runs it (gemm_skinny.h: one fixed sum per output too, 16 rows at a time) and every other
// product here:
// - op(B) = Bᵀ (B stored [N, K], a weight or the keys): term k of a dot product goes to lane
//   k mod 16 (the tail too), then one fixed adding tree;
// - otherwise: each output summed over k in order (the values: trailing zero weights of masked
//   positions add nothing).
// The file is built without floating-point contraction, so vector and scalar code round alike.
#pragma once

#include <cstdint>

namespace sn::cpu {

// C[M,N] (row stride ldc) = alpha · op(A) · op(B) + beta · C, as gemm_rowmajor (beta = 0 only
// writes C).
void invariant_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// While one is alive on a thread, gemm_rowmajor called there computes through row_invariant_gemm
// (sgemm.cpp: the skinny kernel for A·Bᵀ where it runs, else invariant_gemm). Decoding holds one;
// the batched GEMM carries it to its worker threads. Other threads are not affected.
class RowInvariantProducts {
 public:
  RowInvariantProducts();
  ~RowInvariantProducts();
  RowInvariantProducts(const RowInvariantProducts&) = delete;
  RowInvariantProducts& operator=(const RowInvariantProducts&) = delete;
  static bool active();
};

}  // namespace sn::cpu
