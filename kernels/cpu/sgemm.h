// kernels/cpu/sgemm.h — the one row-major single-precision GEMM the CPU kernels call.
//
//   C[M,N] (row stride ldc) = alpha · op(A) · op(B) + beta · C
//
// op(A) is A [M,K] with row stride lda, or with trans_a the transpose of A stored [K,M]; op(B)
// likewise. This is cblas_sgemm(CblasRowMajor, ...): with beta = 0 C is only written (NaNs in it
// do not survive), and with K = 0 or alpha = 0 C becomes beta · C.
//
// Built with SN_WITH_BLAS (SN_BLAS=ON/AUTO and OpenBLAS found) it calls OpenBLAS; otherwise a
// cache-blocked, OpenMP-parallel kernel of our own (sgemm.cpp). A·Bᵀ on up to 16 rows of A goes
// to the skinny kernel of gemm_skinny.h where that applies and is faster. Called inside a parallel region
// (e.g. one GEMM per image on each thread), both run on the calling thread only.
#pragma once

#include <cstdint>

namespace sn::cpu {

void gemm_rowmajor(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                   int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Whether gemm_rowmajor goes through a BLAS library (true) or the portable kernel (false).
bool gemm_uses_blas();

}  // namespace sn::cpu
