// kernels/cpu/gemm_skinny_avx512.cpp — the skinny GEMM kernel for AVX-512 (compiled with
// -mavx512f; run only where the CPU has it, see gemm_skinny.cpp).
#include "kernels/cpu/gemm_skinny.h"

#if defined(__AVX512F__)
#include <immintrin.h>

// GCC 12's unpack intrinsics pass an "undefined" vector (initialised from itself) as the unused
// merge source, which -Wmaybe-uninitialized reports in every caller.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>

namespace sn::cpu::skinny_detail {
namespace {

// out lane r = the sum of the 16 lanes of v[r], for 16 vectors at once. Every v[r] goes through
// the same adding tree (lanes l and l+2, then l and l+1 of each 128-bit block, then the blocks
// pairwise), so a sum does not depend on which of the 16 slots it took.
inline __m512 sum_lanes16(const __m512 v[16]) {
  __m512 w[4];
  for (int i = 0; i < 4; ++i) {
    const __m512* q = v + 4 * i;
    // per 128-bit block: [a0+a2, b0+b2, a1+a3, b1+b3] for (a, b) = (q0, q1), then (q2, q3)
    const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(q[0], q[1]), _mm512_unpackhi_ps(q[0], q[1]));
    const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(q[2], q[3]), _mm512_unpackhi_ps(q[2], q[3]));
    // per block: the block's sum of q0, q1, q2, q3
    w[i] = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
  }
  // the four blocks of each w[i] added: (b0 + b1) + (b2 + b3), w[i] ending in block i
  const __m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_f32x4(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 y = _mm512_add_ps(_mm512_shuffle_f32x4(w[2], w[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_shuffle_f32x4(w[2], w[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 1, 3, 1)));
}

// An MI × NJ block of C (MI·NJ = 16 accumulators): MI rows of A against rows [0, nj) of B.
// Rows past nj repeat the last real one (their results are dropped), so every block shape runs
// the same unrolled loop. kPrefetch: fetch the same columns of the next chunk's weight rows
// (16 rows on) into L1 as this one goes. Measured 10–25% faster where the weight's rows are at most
// 256 floats apart (W4's dense 256-wide weights), up to 20% slower for rows further apart.
template <int MI, int NJ, bool kPrefetch>
[[gnu::always_inline]] inline void block(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, int nj,
                                         int64_t next, float alpha, float beta, float* C, int64_t ldc) {
  static_assert(MI * NJ == 16);
  const float* a[MI];
  const float* b[NJ];
  for (int i = 0; i < MI; ++i) a[i] = A + i * lda;
  for (int j = 0; j < NJ; ++j) b[j] = B + std::min(j, nj - 1) * ldb;
  __m512 acc[16];
  for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_ps();
  auto step = [&](int64_t k, __mmask16 m) [[gnu::always_inline]] {
    __m512 bv[NJ];
    for (int j = 0; j < NJ; ++j) bv[j] = _mm512_maskz_loadu_ps(m, b[j] + k);
    if constexpr (kPrefetch)  // next: floats to the next chunk's row (0 in the last chunk: this row)
      for (int j = 0; j < NJ; ++j) _mm_prefetch(reinterpret_cast<const char*>(b[j] + next + k), _MM_HINT_T0);
    for (int i = 0; i < MI; ++i) {
      const __m512 av = _mm512_maskz_loadu_ps(m, a[i] + k);
      for (int j = 0; j < NJ; ++j) acc[i * NJ + j] = _mm512_fmadd_ps(av, bv[j], acc[i * NJ + j]);
    }
  };
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) step(k, 0xFFFF);
  if (k < K) step(k, __mmask16((1u << (K - k)) - 1));  // masked-off lanes add 0 · 0
  alignas(64) float s[16];
  _mm512_store_ps(s, sum_lanes16(acc));
  for (int i = 0; i < MI; ++i)
    for (int j = 0; j < nj; ++j) {
      float& c = C[i * ldc + j];
      c = beta == 0.f ? alpha * s[i * NJ + j] : alpha * s[i * NJ + j] + beta * c;
    }
}

// Columns [n0, n1) of C in chunks of 16 weight rows, which stay in L1 while every row of A passes
// over them: blocks of 4 × 4 for each group of four rows, then 2 × 8 and 1 × 16 for the rest.
template <bool kPrefetch>
void columns(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
             int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t n = n0; n < n1; n += 16) {
    const int nc = int(std::min<int64_t>(16, n1 - n));
    const int64_t next = n + 16 < n1 ? 16 * ldb : 0;
    const float* Bn = B + n * ldb;
    float* Cn = C + n;
    int64_t m = 0;
    for (; m + 4 <= M; m += 4)
      for (int j = 0; j < nc; j += 4)
        block<4, 4, kPrefetch>(K, A + m * lda, lda, Bn + j * ldb, ldb, std::min(4, nc - j), next, alpha, beta,
                               Cn + m * ldc + j, ldc);
    for (; m + 2 <= M; m += 2)
      for (int j = 0; j < nc; j += 8)
        block<2, 8, kPrefetch>(K, A + m * lda, lda, Bn + j * ldb, ldb, std::min(8, nc - j), next, alpha, beta,
                               Cn + m * ldc + j, ldc);
    if (m < M) block<1, 16, kPrefetch>(K, A + m * lda, lda, Bn, ldb, nc, next, alpha, beta, Cn + m * ldc, ldc);
  }
}

void kernel(int64_t M, int64_t n0, int64_t n1, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
            int64_t ldb, float beta, float* C, int64_t ldc) {
  if (ldb <= 256) return columns<true>(M, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
  columns<false>(M, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

Kernel avx512_kernel() { return &kernel; }

}  // namespace sn::cpu::skinny_detail

#else

namespace sn::cpu::skinny_detail {
Kernel avx512_kernel() { return nullptr; }
}  // namespace sn::cpu::skinny_detail

#endif
