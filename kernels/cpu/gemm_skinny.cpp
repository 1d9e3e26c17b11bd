// kernels/cpu/gemm_skinny.cpp — when the skinny GEMM applies, and its split across threads (see
// gemm_skinny.h; the kernel is in gemm_skinny_avx512.cpp).
#include "kernels/cpu/gemm_skinny.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace sn::cpu {
namespace {

bool enabled_from_environment() {
  const char* env = std::getenv("SN_GEMM_SKINNY");
  return !(env && std::strcmp(env, "0") == 0);
}

std::atomic<bool> g_enabled{enabled_from_environment()};

skinny_detail::Kernel active_kernel() {
  static const skinny_detail::Kernel k =
      __builtin_cpu_supports("avx512f") ? skinny_detail::avx512_kernel() : nullptr;
  return k;
}

constexpr int64_t kParallelMacs = int64_t(1) << 18;  // below this much work, one thread

}  // namespace

void set_skinny_gemm_enabled(bool enabled) { g_enabled.store(enabled); }
bool skinny_gemm_enabled() { return g_enabled.load(); }

bool skinny_gemm_available() { return skinny_gemm_enabled() && active_kernel() != nullptr; }

bool skinny_gemm_applies(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K) {
  // Short rows (K < 64, e.g. attention's head dimension) or few outputs leave the fixed cost of
  // the lane sums uncovered; the other GEMM path does those better.
  return !trans_a && trans_b && M >= 1 && M <= kSkinnyMaxRows && N >= 16 && K >= 64 && skinny_gemm_available();
}

void skinny_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
                 int64_t ldb, float beta, float* C, int64_t ldc) {
  const skinny_detail::Kernel kernel = active_kernel();
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (threads <= 1 || M * N * K < kParallelMacs) return kernel(M, 0, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  // Columns in whole chunks of 16 weight rows; each output is computed the same way on any thread.
  const int64_t chunks = (N + 15) / 16, per = (chunks + threads - 1) / threads;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int t = 0; t < threads; ++t) {
    const int64_t n0 = std::min(N, t * per * 16), n1 = std::min(N, (t + 1) * per * 16);
    if (n0 < n1) kernel(M, n0, n1, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
}

}  // namespace sn::cpu
