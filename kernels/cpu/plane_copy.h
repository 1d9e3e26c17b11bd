// kernels/cpu/plane_copy.h — copies of image planes between layouts: short rows between row
// strides (padding, unpadding), every stride-th element (im2col/col2im and the phases of a
// strided convolution) and channels-first to channels-last.
//
// The rows of W2's planes are 7 to 30 floats, so a library memcpy call per row costs more than the
// copy itself (it was ~6% of a training step); these copies are inline vector moves.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace sn::cpu {

// n floats from src to dst (not overlapping): fixed-size chunks the compiler turns into vector
// moves, the last chunk overlapping the one before it instead of a scalar tail. (Files that use
// it are built with -fno-tree-loop-distribute-patterns under GCC, which would otherwise turn the
// loops back into a library call; see kernels/CMakeLists.txt.)
inline void copy_row(const float* __restrict src, float* __restrict dst, int64_t n) {
  if (n >= 16) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) std::memcpy(dst + i, src + i, 64);
    if (i < n) std::memcpy(dst + n - 16, src + n - 16, 64);
  } else if (n >= 8) {
    std::memcpy(dst, src, 32);
    std::memcpy(dst + n - 8, src + n - 8, 32);
  } else if (n >= 4) {
    std::memcpy(dst, src, 16);
    std::memcpy(dst + n - 4, src + n - 4, 16);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  }
}

// A rows × width block between row strides.
inline void copy_block(const float* src, int64_t src_ld, float* dst, int64_t dst_ld, int64_t rows, int64_t width) {
  for (int64_t r = 0; r < rows; ++r) copy_row(src + r * src_ld, dst + r * dst_ld, width);
}

// out[wo] = xr[wo · stride] for wo in [lo, hi). Stride 2 (the downsampling convolutions) takes
// 8 outputs per step from one masked 16-float load (nothing is read past the last input used).
inline void gather_row(const float* xr, int64_t stride, float* out, int64_t lo, int64_t hi) {
  if (stride == 1) return copy_row(xr + lo, out + lo, hi - lo);
  int64_t wo = lo;
#if defined(__AVX512F__)
  if (stride == 2) {
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0);
    for (; wo < hi; wo += 8) {
      const int n = int(std::min<int64_t>(8, hi - wo));
      const __m512 v = _mm512_maskz_loadu_ps(__mmask16((1u << (2 * n - 1)) - 1), xr + 2 * wo);
      _mm512_mask_storeu_ps(out + wo, __mmask16((1u << n) - 1), _mm512_maskz_permutexvar_ps(0xFFFF, evens, v));
    }
    return;
  }
#endif
  for (; wo < hi; ++wo) out[wo] = xr[wo * stride];
}

// xr[wo · stride] = in[wo] (kAdd: += in[wo]) for wo in [lo, hi), the transpose of gather_row.
template <bool kAdd = false>
inline void scatter_row(const float* in, int64_t stride, float* xr, int64_t lo, int64_t hi) {
  if (stride == 1 && !kAdd) return copy_row(in + lo, xr + lo, hi - lo);
  int64_t wo = lo;
#if defined(__AVX512F__)
  if (stride == 2) {  // in[wo + i] goes to lane 2i of the 16 floats at xr + 2·wo
    const __m512i spread = _mm512_setr_epi32(0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0);
    for (; wo < hi; wo += 8) {
      const int n = int(std::min<int64_t>(8, hi - wo));
      const __mmask16 lanes = __mmask16(((1u << (2 * n - 1)) - 1) & 0x5555u);
      __m512 g = _mm512_maskz_permutexvar_ps(0xFFFF, spread, _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), in + wo));
      if constexpr (kAdd) g = _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, xr + 2 * wo), g);
      _mm512_mask_storeu_ps(xr + 2 * wo, lanes, g);
    }
    return;
  }
#endif
  for (; wo < hi; ++wo) {
    if constexpr (kAdd) xr[wo * stride] += in[wo];
    else xr[wo * stride] = in[wo];
  }
}

namespace plane_copy_detail {

#if defined(__AVX__)
// An 8 × 8 block at src (row stride src_ld) transposed: column k goes to dst[k][col .. col + 8).
inline void transpose8x8(const float* src, int64_t src_ld, float* const* dst, int64_t col) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * src_ld);
  for (int i = 0; i < 8; i += 2) {  // interleave row pairs (0,1) (2,3) ...: a0 b0 a1 b1 | a4 b4 a5 b5
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {  // columns k and k+4 of four rows: a0 b0 c0 d0 | a4 b4 c4 d4
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int k = 0; k < 4; ++k) {  // join the halves of rows 0-3 and rows 4-7
    _mm256_storeu_ps(dst[k] + col, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
    _mm256_storeu_ps(dst[k + 4] + col, _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
  }
}
#endif

}  // namespace plane_copy_detail

// Channels-first planes to channels-last rows: dst_row(p)[c] = src[c * src_ld + p] for
// `channels` planes of `positions` values, where dst_row(p) is where position p's channels go
// (a padded layout just maps p to its padded position). In 8 × 8 tiles where AVX is available.
template <class DstRow>
inline void to_channels_last(const float* src, int64_t src_ld, int64_t channels, int64_t positions,
                             DstRow&& dst_row) {
  int64_t p = 0;
#if defined(__AVX__)
  for (; p + 8 <= positions; p += 8) {
    float* rows[8];
    for (int k = 0; k < 8; ++k) rows[k] = dst_row(p + k);
    int64_t c = 0;
    for (; c + 8 <= channels; c += 8) plane_copy_detail::transpose8x8(src + c * src_ld + p, src_ld, rows, c);
    for (; c < channels; ++c)
      for (int k = 0; k < 8; ++k) rows[k][c] = src[c * src_ld + p + k];
  }
#endif
  for (; p < positions; ++p) {
    float* row = dst_row(p);
    for (int64_t c = 0; c < channels; ++c) row[c] = src[c * src_ld + p];
  }
}

}  // namespace sn::cpu
