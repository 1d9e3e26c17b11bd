// kernels/cpu/conv_direct_avx2.cpp — the direct convolution kernels for AVX2 + FMA (compiled with
// -mavx2 -mfma; run only where the CPU has them, see conv_direct.cpp).
#include "kernels/cpu/conv_direct_kernels.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

namespace sn::cpu::direct_detail {
namespace {

// 16 ymm registers: e.g. 6 × 2 accumulators + 2 operands + a broadcast. A partial vector uses
// maskload/maskstore with a lane mask (the sign bit of each 32-bit lane); masked-off lanes are
// not accessed.
struct Avx2 {
  using Reg = __m256;
  using Mask = __m256i;
  static constexpr int lanes = 8, max_nv = 3;
  static constexpr std::array<int, 5> max_mr = {0, 14, 6, 4, 0};
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float f) { return _mm256_set1_ps(f); }
  static Reg load(Mask m, const float* p) { return _mm256_maskload_ps(p, m); }
  static void store(Mask m, float* p, Reg v) { _mm256_maskstore_ps(p, m, v); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Mask mask(int64_t on) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(on)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
};

}  // namespace

const IsaKernels* avx2_kernels() {
  static const IsaKernels kernels = kernels_for<Avx2>("avx2");
  return &kernels;
}

}  // namespace sn::cpu::direct_detail

#else

namespace sn::cpu::direct_detail {
const IsaKernels* avx2_kernels() { return nullptr; }
}  // namespace sn::cpu::direct_detail

#endif
