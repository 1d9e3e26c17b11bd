// kernels/cpu/gemm_invariant.cpp — products with one fixed sum per output (gemm_invariant.h).
// Built with -ffp-contract=off: an a·b + c is a multiply then an add in every loop, vectorised or not.
#include "kernels/cpu/gemm_invariant.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace sn::cpu {
namespace {

constexpr int kLanes = 16;
constexpr int64_t kCols = 64;  // columns summed at once when B is not transposed
thread_local int t_guards = 0;  // RowInvariantProducts alive on this thread

// 16 float lanes as one value (GCC/Clang vector extension): the accumulators stay in registers.
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));

Lanes load(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The fixed adding tree over the lanes.
float lanes_total(Lanes v) {
  float acc[kLanes];
  std::memcpy(acc, &v, sizeof acc);
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

void store(float* c, float v, float alpha, float beta) { *c = beta == 0.f ? alpha * v : alpha * v + beta * *c; }

// D dot products of a (zero-padded to whole lanes) with rows b[0..D) of length K: term k in lane
// k mod 16, the tail from zero-padded copies, so each sum is the same whatever D.
template <int D>
void dots(const float* a, const float* const* b, int64_t K, float* out) {
  const int64_t body = K / kLanes * kLanes;
  Lanes acc[D] = {};
  for (int64_t k = 0; k < body; k += kLanes) {
    const Lanes x = load(a + k);
    for (int d = 0; d < D; ++d) acc[d] += x * load(b[d] + k);
  }
  if (body < K) {
    const Lanes x = load(a + body);
    for (int d = 0; d < D; ++d) {
      float tail[kLanes] = {};
      std::copy(b[d] + body, b[d] + K, tail);
      acc[d] += x * load(tail);
    }
  }
  for (int d = 0; d < D; ++d) out[d] = lanes_total(acc[d]);
}

// Columns [j0, j1) of row i of C for op(B) = Bᵀ: C[i, j] = Σ_k a_row[k] · B[j, k], a_row being
// op(A)'s row i zero-padded to whole lanes; four dot products in flight (independent chains hide
// the adds' latency).
void dot_row(const float* a_row, int64_t i, int64_t j0, int64_t j1, int64_t K, float alpha, const float* B,
             int64_t ldb, float beta, float* C, int64_t ldc) {
  float sums[4];
  int64_t j = j0;
  for (; j + 4 <= j1; j += 4) {
    const float* b[4] = {B + j * ldb, B + (j + 1) * ldb, B + (j + 2) * ldb, B + (j + 3) * ldb};
    dots<4>(a_row, b, K, sums);
    for (int d = 0; d < 4; ++d) store(C + i * ldc + j + d, sums[d], alpha, beta);
  }
  for (; j < j1; ++j) {
    const float* b[1] = {B + j * ldb};
    dots<1>(a_row, b, K, sums);
    store(C + i * ldc + j, sums[0], alpha, beta);
  }
}

// Columns [j0, N) of row i of C for op(B) = B (stored [K, N]): C[i, j] = Σ_k op(A)(i, k) · B[k, j], k in order.
void ordered_row(bool trans_a, int64_t i, int64_t j0, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  auto a_at = [&](int64_t k) { return trans_a ? A[k * lda + i] : A[i * lda + k]; };
  for (; j0 + kCols <= N; j0 += kCols) {
    Lanes acc[kCols / kLanes] = {};
    for (int64_t k = 0; k < K; ++k) {
      const float a = a_at(k);
      for (int64_t v = 0; v < kCols / kLanes; ++v) acc[v] += a * load(B + k * ldb + j0 + v * kLanes);
    }
    float out[kCols];
    std::memcpy(out, acc, sizeof out);
    for (int64_t l = 0; l < kCols; ++l) store(C + i * ldc + j0 + l, out[l], alpha, beta);
  }
  if (j0 == N) return;
  const int64_t cols = N - j0;  // the same multiply and add per output, one column at a time
  float acc[kCols] = {};
  for (int64_t k = 0; k < K; ++k) {
    const float a = a_at(k);
    for (int64_t l = 0; l < cols; ++l) acc[l] += a * B[k * ldb + j0 + l];
  }
  for (int64_t l = 0; l < cols; ++l) store(C + i * ldc + j0 + l, acc[l], alpha, beta);
}

}  // namespace

void invariant_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (alpha == 0.f) {  // C = beta · C, A and B unread (cblas_sgemm's rule)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
  // The threads split rows, or the columns of each row for a few rows (decoding reads a weight
  // once per position, at the memory speed of every core); no output's sum depends on the split.
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const bool by_rows = M >= 4 * int64_t(threads);
  constexpr int64_t kChunk = kCols;  // columns per task when splitting a row
  const int64_t chunks = (N + kChunk - 1) / kChunk, Kp = (K + kLanes - 1) / kLanes * kLanes;
  const bool parallel = threads > 1 && double(M) * double(N) * double(K) >= double(1 << 15) && (by_rows ? M : chunks) > 1;
  // Each thread's copy of op(A)'s row, zero past K (the lanes' padding); allocated out here, where
  // a failure is an exception rather than the end of the process.
  std::vector<float> a_rows(size_t(trans_b ? Kp * threads : 0), 0.f);
  auto row_part = [&](int64_t i, int64_t j0, int64_t j1, float* a_row) {
    if (!trans_b) return ordered_row(trans_a, i, j0, j1, K, alpha, A, lda, B, ldb, beta, C, ldc);
    for (int64_t k = 0; k < K; ++k) a_row[k] = trans_a ? A[k * lda + i] : A[i * lda + k];
    dot_row(a_row, i, j0, j1, K, alpha, B, ldb, beta, C, ldc);
  };
#pragma omp parallel num_threads(threads) if (parallel)
  {
    float* a_row = a_rows.data() + (trans_b ? Kp * omp_get_thread_num() : 0);
    if (by_rows) {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < M; ++i) row_part(i, 0, N, a_row);
    } else {
      for (int64_t i = 0; i < M; ++i) {
#pragma omp for schedule(static)
        for (int64_t c = 0; c < chunks; ++c) row_part(i, c * kChunk, std::min(N, (c + 1) * kChunk), a_row);
      }
    }
  }
}

RowInvariantProducts::RowInvariantProducts() { ++t_guards; }
RowInvariantProducts::~RowInvariantProducts() { --t_guards; }
bool RowInvariantProducts::active() { return t_guards > 0; }

}  // namespace sn::cpu
