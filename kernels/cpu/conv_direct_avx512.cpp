// kernels/cpu/conv_direct_avx512.cpp — the direct convolution kernels for AVX-512 (compiled with
// -mavx512f; run only where the CPU has it, see conv_direct.cpp).
#include "kernels/cpu/conv_direct_kernels.h"

#if defined(__AVX512F__)
#include <immintrin.h>

namespace sn::cpu::direct_detail {
namespace {

// 32 zmm registers: e.g. 12 × 2 accumulators + 2 operands + a broadcast. A mask register selects
// the lanes of a partial vector; masked-off lanes are neither read nor written.
struct Avx512 {
  using Reg = __m512;
  using Mask = __mmask16;
  static constexpr int lanes = 16, max_nv = 4;
  static constexpr std::array<int, 5> max_mr = {0, 16, 12, 8, 6};
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float f) { return _mm512_set1_ps(f); }
  static Reg load(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(Mask m, float* p, Reg v) { _mm512_mask_storeu_ps(p, m, v); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Mask mask(int64_t on) { return on >= 16 ? Mask(0xFFFF) : Mask((1u << on) - 1); }
};

}  // namespace

const IsaKernels* avx512_kernels() {
  static const IsaKernels kernels = kernels_for<Avx512>("avx512");
  return &kernels;
}

}  // namespace sn::cpu::direct_detail

#else

namespace sn::cpu::direct_detail {
const IsaKernels* avx512_kernels() { return nullptr; }
}  // namespace sn::cpu::direct_detail

#endif
