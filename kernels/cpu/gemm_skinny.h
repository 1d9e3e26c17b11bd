// kernels/cpu/gemm_skinny.h — C = alpha·A·Bᵀ + beta·C for up to 16 rows of A, B stored [N, K]:
// a linear layer applied to a few positions (decoding one byte, or the drafted bytes that one
// verification pass of self-speculative decoding checks at once).
//
// A BLAS library packs B (here the weight) before all but the smallest products, and for a few
// rows that copy costs more than the arithmetic: OpenBLAS takes about six times as long for 8
// rows of a 256 × 256 weight as for 4. This kernel reads each weight row once, straight from its
// window, and multiplies it against every row of A (which stays in L1). Within it each output is
// the same sum whatever M is — the K terms in 16 lanes in order, then one fixed adding tree — so
// a row's result does not depend on the rows computed with it. (With OpenBLAS's AVX-512
// kernels, gemm_rowmajor leaves products of 2 or more rows with M·N ≤ 1024 to their small-matrix
// path, which is faster there; such rows round differently from the same rows in a larger M.)
#pragma once

#include <cstdint>

namespace sn::cpu {

constexpr int64_t kSkinnyMaxRows = 16;

// Whether this kernel can compute gemm_rowmajor(trans_a, trans_b, M, N, K, ...): op(A) = A [M, K]
// and op(B) = Bᵀ (B stored [N, K], rows along K), M ≤ 16, N ≥ 16, K ≥ 64, a CPU with AVX-512,
// and not disabled.
bool skinny_gemm_applies(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K);

// C[M,N] (row stride ldc) = alpha · A · Bᵀ + beta · C; A [M,K] with row stride lda, B [N,K] with
// row stride ldb. beta = 0 only writes C. Call only where skinny_gemm_applies, or, for any
// M ≤ 16, N and K ≥ 1, where skinny_gemm_available (row-invariant products).
void skinny_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                 int64_t ldb, float beta, float* C, int64_t ldc);

// On by default; SN_GEMM_SKINNY=0 in the environment, or this, turns it off (comparisons, tests).
void set_skinny_gemm_enabled(bool enabled);
bool skinny_gemm_enabled();
// Whether the kernel runs here at all (enabled, and a CPU with AVX-512): it then computes any
// M ≤ 16, N and K ≥ 1, each output one fixed sum (what row-invariant products use).
bool skinny_gemm_available();

namespace skinny_detail {
// Columns [n0, n1) of C; nullptr where the AVX-512 translation unit could not be built.
using Kernel = void (*)(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* A, int64_t lda,
                        const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
Kernel avx512_kernel();
}  // namespace skinny_detail

}  // namespace sn::cpu
