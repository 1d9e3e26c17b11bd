// kernels/cpu/sgemm.cpp — row-major SGEMM: OpenBLAS when built with it, else a portable kernel;
// either way x·Wᵀ on up to 16 rows goes to the skinny kernel where it applies (gemm_skinny.h).
// While decoding asks for row-invariant products (gemm_invariant.h), row_invariant_gemm decides.
//
// The portable kernel is the usual three-level blocking: for each [KC × NC] panel of op(B)
// (packed once, shared by all threads, in NR-wide column strips), each [MC × KC] block of op(A)
// is packed in MR-tall row strips, and an MR × NR register tile of C is accumulated over the
// panel's KC steps. The strips are zero-padded, so the micro-kernel has no edge cases; edges are
// handled when the tile is written back. The threads share out (A block, column chunk) tasks of
// each panel. Every element of C sums its K terms in the same order whatever the thread count,
// so results do not depend on it.
#include "kernels/cpu/sgemm.h"

#include <algorithm>

#include "kernels/cpu/gemm_invariant.h"
#include "kernels/cpu/gemm_skinny.h"

#if SN_WITH_BLAS
#include <cblas.h>

#include <cctype>
#include <string>
#else
#include <omp.h>

#include <algorithm>
#include <vector>
#endif

namespace sn::cpu {
namespace {

// While decoding holds RowInvariantProducts: x·Wᵀ through the skinny kernel where it runs (each
// output one fixed sum, whatever M, N and the thread split), 16 rows at a time; everything else,
// and every product on CPUs without it, through invariant_gemm. Which one a product takes depends
// on its layout and the CPU only, so a position computed alone and among others takes the same.
void row_invariant_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                        int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (!trans_a && trans_b && K > 0 && alpha != 0.f && skinny_gemm_available()) {
    for (int64_t m = 0; m < M; m += kSkinnyMaxRows)
      skinny_gemm(std::min(kSkinnyMaxRows, M - m), N, K, alpha, A + m * lda, lda, B, ldb, beta, C + m * ldc, ldc);
    return;
  }
  invariant_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

#if SN_WITH_BLAS

bool gemm_uses_blas() { return true; }

namespace {

// Whether OpenBLAS runs its AVX-512 kernels (SkylakeX, Cooperlake, Sapphire Rapids), which multiply
// products of M·N ≤ 1024 without packing B. Its other kernels (Haswell, Zen: also what
// OPENBLAS_CORETYPE may force on an AVX-512 CPU) pack B for every product, one row included.
bool blas_has_small_matrix_kernels() {
  static const bool yes = [] {
    std::string core = openblas_get_corename();
    for (char& ch : core) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return core.find("skylakex") != std::string::npos || core.find("cooperlake") != std::string::npos ||
           core.find("sapphire") != std::string::npos;
  }();
  return yes;
}

}  // namespace

void gemm_rowmajor(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                   int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (RowInvariantProducts::active()) return row_invariant_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  // Where OpenBLAS packs the weight, the skinny kernel is 1.3-6x faster; OpenBLAS's small-matrix
  // kernels beat it for 2-4 rows with M·N ≤ 1024 and tie at one row (docs/performance.md,
  // "Decoding").
  const bool blas_small = M > 1 && M * N <= 1024 && blas_has_small_matrix_kernels();
  if (alpha != 0.f && !blas_small && skinny_gemm_applies(trans_a, trans_b, M, N, K))
    return skinny_gemm(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, int(M),
              int(N), int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

#else

bool gemm_uses_blas() { return false; }

namespace {

constexpr int64_t MR = 6;     // register tile rows
constexpr int64_t NR = 16;    // register tile columns (one 512-bit or two 256-bit vectors)
constexpr int64_t MC = 96;    // A block rows (a multiple of MR): MC × KC floats stay in L2
constexpr int64_t KC = 256;   // panel depth: a KC × NR strip of B stays in L1
constexpr int64_t NC = 3072;  // panel width (a multiple of NR): KC × NC floats of B
constexpr double kParallelFlops = 2e6;  // below this much work, one thread

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The operands as element accessors: op(A)(i, k) and op(B)(k, j).
struct Operands {
  const float* A;
  int64_t lda;
  bool ta;
  const float* B;
  int64_t ldb;
  bool tb;
};

// Packs rows [i0, i0 + mc) × cols [k0, k0 + kc) of op(A) as MR-tall strips: strip s holds
// ap[(s·kc + k)·MR + r] = op(A)(i0 + s·MR + r, k0 + k), zero past row mc.
void pack_a(const Operands& o, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* ap) {
  for (int64_t s = 0; s * MR < mc; ++s) {
    const int64_t rows = std::min(MR, mc - s * MR);
    float* dst = ap + s * kc * MR;
    if (rows < MR) std::fill(dst, dst + kc * MR, 0.f);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = i0 + s * MR + r;
      if (!o.ta) {  // row i of A is contiguous along k
        const float* src = o.A + i * o.lda + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = src[k];
      } else {  // op(A)(i, k) = A[k, i]
        const float* src = o.A + k0 * o.lda + i;
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = src[k * o.lda];
      }
    }
  }
}

// Packs strip s (columns [j0 + s·NR, +NR)) of rows [k0, k0 + kc) of op(B):
// bp[k·NR + c] = op(B)(k0 + k, j0 + s·NR + c), zero past column nc.
void pack_b_strip(const Operands& o, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t s, float* bp) {
  const int64_t cols = std::min(NR, nc - s * NR), jb = j0 + s * NR;
  if (!o.tb) {  // row k of B is contiguous along j
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = o.B + (k0 + k) * o.ldb + jb;
      float* dst = bp + k * NR;
      for (int64_t c = 0; c < cols; ++c) dst[c] = src[c];
      for (int64_t c = cols; c < NR; ++c) dst[c] = 0.f;
    }
  } else {  // op(B)(k, j) = B[j, k]: column j of op(B) is contiguous along k
    if (cols < NR) std::fill(bp, bp + kc * NR, 0.f);
    for (int64_t c = 0; c < cols; ++c) {
      const float* src = o.B + (jb + c) * o.ldb + k0;
      for (int64_t k = 0; k < kc; ++k) bp[k * NR + c] = src[k];
    }
  }
}

// acc[MR][NR] = Σ_k a[k][·] ⊗ b[k][·]; a fixed-size loop nest the compiler keeps in vector
// registers (fused multiply-adds where the target has them).
inline void micro_kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict acc) {
  float c[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* bk = b + k * NR;
    const float* ak = a + k * MR;
#pragma GCC unroll 6
    for (int64_t r = 0; r < MR; ++r) {
      const float av = ak[r];
#pragma omp simd
      for (int64_t j = 0; j < NR; ++j) c[r][j] += av * bk[j];
    }
  }
  for (int64_t r = 0; r < MR; ++r)
    for (int64_t j = 0; j < NR; ++j) acc[r * NR + j] = c[r][j];
}

// Writes an (rows × cols) corner of a tile into C: the first panel applies beta (beta = 0 never
// reads C), later panels accumulate.
inline void store_tile(const float* acc, int64_t rows, int64_t cols, float alpha, float beta, bool first,
                       float* C, int64_t ldc) {
  for (int64_t r = 0; r < rows; ++r) {
    float* cr = C + r * ldc;
    const float* ar = acc + r * NR;
    if (!first) {
      for (int64_t j = 0; j < cols; ++j) cr[j] += alpha * ar[j];
    } else if (beta == 0.f) {
      for (int64_t j = 0; j < cols; ++j) cr[j] = alpha * ar[j];
    } else {
      for (int64_t j = 0; j < cols; ++j) cr[j] = alpha * ar[j] + beta * cr[j];
    }
  }
}

// C = beta · C (K = 0 or alpha = 0); beta = 0 writes zeros without reading C.
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* cr = C + i * ldc;
    if (beta == 0.f) std::fill(cr, cr + N, 0.f);
    else if (beta != 1.f)
      for (int64_t j = 0; j < N; ++j) cr[j] *= beta;
  }
}

// Scratch that lives as long as its thread: packing buffers grow to the largest size seen.
float* scratch(std::vector<float>& buffer, int64_t n) {
  if (int64_t(buffer.size()) < n) buffer.resize(size_t(n));
  return buffer.data();
}

thread_local std::vector<float> t_apack;
thread_local std::vector<float> t_bpack;

}  // namespace

void gemm_rowmajor(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                   int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) return scale_c(M, N, beta, C, ldc);
  if (RowInvariantProducts::active()) return row_invariant_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (skinny_gemm_applies(trans_a, trans_b, M, N, K)) return skinny_gemm(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  const Operands o{A, lda, trans_a, B, ldb, trans_b};

  const bool parallel = !omp_in_parallel() && omp_get_max_threads() > 1 &&
                        2.0 * double(M) * double(N) * double(K) >= kParallelFlops;
  const int64_t m_blocks = ceil_div(M, MC);
  // The panel's B, packed once per (jc, pc) by all threads together and read by all.
  float* bpack = scratch(t_bpack, std::min(KC, K) * ceil_div(std::min(NC, N), NR) * NR);

#pragma omp parallel if (parallel)
  {
    const int threads = omp_get_num_threads();
    float* apack = scratch(t_apack, MC * std::min(KC, K));
    alignas(64) float acc[MR * NR];
    for (int64_t jc = 0; jc < N; jc += NC) {
      const int64_t nc = std::min(NC, N - jc), strips = ceil_div(nc, NR);
      // Column chunks per A block: enough tasks for every thread, each at least 4 strips wide.
      const int64_t want = std::max<int64_t>(1, ceil_div(2 * threads, m_blocks));
      const int64_t chunk = std::max<int64_t>(std::min<int64_t>(4, strips), ceil_div(strips, want));
      const int64_t chunks = ceil_div(strips, chunk);
      for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kc = std::min(KC, K - pc);
        const bool first = pc == 0;
#pragma omp for schedule(static)
        for (int64_t s = 0; s < strips; ++s) pack_b_strip(o, pc, kc, jc, nc, s, bpack + s * kc * NR);
        // (the implicit barrier: the whole panel is packed before anyone reads it)
        int64_t packed_block = -1;  // the A block this thread's apack holds for this panel
#pragma omp for schedule(static)
        for (int64_t task = 0; task < m_blocks * chunks; ++task) {
          const int64_t ib = task / chunks, jb = task % chunks;
          const int64_t ic = ib * MC, mc = std::min(MC, M - ic);
          if (packed_block != ib) {
            pack_a(o, ic, mc, pc, kc, apack);
            packed_block = ib;
          }
          const int64_t s_end = std::min(strips, (jb + 1) * chunk);
          for (int64_t s = jb * chunk; s < s_end; ++s) {
            const int64_t j = jc + s * NR, cols = std::min(NR, N - j);
            const float* bs = bpack + s * kc * NR;
            for (int64_t r0 = 0; r0 < mc; r0 += MR) {
              micro_kernel(kc, apack + (r0 / MR) * kc * MR, bs, acc);
              store_tile(acc, std::min(MR, mc - r0), cols, alpha, beta, first, C + (ic + r0) * ldc + j, ldc);
            }
          }
        }
        // (the implicit barrier: nobody repacks B while others still read it)
      }
    }
  }
}

#endif

}  // namespace sn::cpu
