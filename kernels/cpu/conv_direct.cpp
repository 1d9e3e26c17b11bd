// kernels/cpu/conv_direct.cpp — the register-tiled direct convolution kernel (see conv_direct.h).
#include "kernels/cpu/conv_direct.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

#include "core/error.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace sn::cpu {
namespace {

// The tile shapes tried: per NV (vectors of 16 positions), the most channels whose MR·NV
// accumulators, NV operand vectors and one broadcast fit the 32 vector registers.
constexpr int kMaxNv = 4;
constexpr std::array<int, kMaxNv + 1> kMaxMr = {0, 16, 12, 8, 6};

}  // namespace

DirectTile direct_tile_for(int64_t L, int64_t Cout) {
  // Cycles per K step, summed over tiles and channel blocks: FMAs issue two per cycle, an
  // accumulator waits 4 cycles for its previous FMA, loads issue two per cycle.
  auto block_cycles = [](int m, int nv) { return std::max({m * nv / 2.0, 4.0, (m + nv) / 2.0}); };
  DirectTile best{1, 1};
  double best_cost = std::numeric_limits<double>::infinity();
  for (int nv = 1; nv <= kMaxNv; ++nv)
    for (int mr : {kMaxMr[size_t(nv)], 8, 4}) {
      if (mr > kMaxMr[size_t(nv)]) continue;
      const int64_t tiles = (L + 16 * nv - 1) / (16 * nv);
      double per_tile = 0;
      for (int64_t b0 = 0; b0 < Cout; b0 += mr) per_tile += block_cycles(int(std::min<int64_t>(mr, Cout - b0)), nv);
      const double cost = double(tiles) * per_tile;
      if (cost < best_cost - 1e-9) best_cost = cost, best = {nv, mr};
    }
  return best;
}

void pack_direct_filter(const float* taps, int64_t ntaps, int64_t Cout, int64_t Cin, int mr, float* packed) {
  const int64_t blocks = (Cout + mr - 1) / mr;
#pragma omp parallel for schedule(static) if (ntaps * Cout * Cin >= (1 << 15))
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t b0 = block * mr, m = std::min<int64_t>(mr, Cout - b0);
    float* dst = packed + b0 * ntaps * Cin;
    for (int64_t ci = 0; ci < Cin; ++ci)
      for (int64_t t = 0; t < ntaps; ++t)
        for (int64_t r = 0; r < m; ++r) *dst++ = taps[(t * Cout + b0 + r) * Cin + ci];
  }
}

#if defined(__AVX512F__)

bool direct_conv_available() { return true; }

namespace {

// One MR × 16·NV output tile: `a` is the block's packed filter [ci][tap][MR], `in` the planes
// already advanced to the tile's first position; masks[v] selects the lanes below L.
template <int MR, int NV>
void tile_kernel(const float* a, const float* in, int64_t plane, const int64_t* offsets, int64_t ntaps, int64_t Cin,
                 const __mmask16* masks, float* out, int64_t ldo) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t ci = 0; ci < Cin; ++ci, in += plane) {
    for (int64_t t = 0; t < ntaps; ++t, a += MR) {
      const float* b = in + offsets[t];
      __m512 bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_maskz_loadu_ps(masks[v], b + 16 * v);
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        const __m512 av = _mm512_set1_ps(a[r]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(out + r * ldo + 16 * v, masks[v], acc[r][v]);
}

using TileFn = void (*)(const float*, const float*, int64_t, const int64_t*, int64_t, int64_t, const __mmask16*, float*,
                        int64_t);

// kTiles[nv][m]: the kernel for m channels (1 ≤ m ≤ kMaxMr[nv]) by nv vectors.
template <int NV, int... M>
constexpr std::array<TileFn, 17> row_of(std::integer_sequence<int, M...>) {
  std::array<TileFn, 17> row{};
  ((row[size_t(M + 1)] = &tile_kernel<M + 1, NV>), ...);
  return row;
}
constexpr std::array<std::array<TileFn, 17>, kMaxNv + 1> kTiles = {
    std::array<TileFn, 17>{}, row_of<1>(std::make_integer_sequence<int, kMaxMr[1]>()),
    row_of<2>(std::make_integer_sequence<int, kMaxMr[2]>()), row_of<3>(std::make_integer_sequence<int, kMaxMr[3]>()),
    row_of<4>(std::make_integer_sequence<int, kMaxMr[4]>())};

// One MR × 16·NV tile of the filter gradient of one tap (see direct_conv_weight_image).
template <int MR, int NV>
void weight_tile_kernel(const float* dy, int64_t ld_dy, const float* x_t, int64_t ld_x, int64_t L, const __mmask16* masks,
                        float* dw, int64_t ld_w) {
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_maskz_loadu_ps(masks[v], dw + r * ld_w + 16 * v);
  for (int64_t p = 0; p < L; ++p, x_t += ld_x, ++dy) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_maskz_loadu_ps(masks[v], x_t + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(dy[r * ld_dy]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(dw + r * ld_w + 16 * v, masks[v], acc[r][v]);
}

using WeightTileFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, const __mmask16*, float*, int64_t);

template <int NV, int... M>
constexpr std::array<WeightTileFn, 17> weight_row_of(std::integer_sequence<int, M...>) {
  std::array<WeightTileFn, 17> row{};
  ((row[size_t(M + 1)] = &weight_tile_kernel<M + 1, NV>), ...);
  return row;
}
constexpr std::array<std::array<WeightTileFn, 17>, kMaxNv + 1> kWeightTiles = {
    std::array<WeightTileFn, 17>{}, weight_row_of<1>(std::make_integer_sequence<int, kMaxMr[1]>()),
    weight_row_of<2>(std::make_integer_sequence<int, kMaxMr[2]>()),
    weight_row_of<3>(std::make_integer_sequence<int, kMaxMr[3]>()),
    weight_row_of<4>(std::make_integer_sequence<int, kMaxMr[4]>())};

// masks[v] for the vectors of a tile starting at lane `first` of `count`.
void lane_masks(int64_t first, int64_t count, int nv, __mmask16* masks) {
  for (int v = 0; v < nv; ++v) {
    const int64_t lanes = std::clamp<int64_t>(count - first - 16 * v, 0, 16);
    masks[v] = lanes == 16 ? __mmask16(0xFFFF) : __mmask16((1u << lanes) - 1);
  }
}

}  // namespace

void direct_conv_weight_image(const DirectConvWeightImage& job, DirectTile tile) {
  const int64_t width = 16 * tile.nv, tap_size = job.Cout * job.Cin;
  for (int64_t c0 = 0; c0 < job.Cin; c0 += width) {
    __mmask16 masks[kMaxNv];
    lane_masks(c0, job.Cin, tile.nv, masks);
    for (int64_t t = 0; t < job.ntaps; ++t)
      for (int64_t b0 = 0; b0 < job.Cout; b0 += tile.mr) {
        const int64_t m = std::min<int64_t>(tile.mr, job.Cout - b0);
        kWeightTiles[size_t(tile.nv)][size_t(m)](job.dy + b0 * job.ld_dy, job.ld_dy,
                                                 job.x_t + job.offsets[t] * job.Cin + c0, job.Cin, job.L, masks,
                                                 job.dw + t * tap_size + b0 * job.Cin + c0, job.Cin);
      }
  }
}

void direct_conv_image(const DirectConvImage& job, const float* packed, DirectTile tile) {
  const int64_t K = job.ntaps * job.Cin, width = 16 * tile.nv;
  for (int64_t p0 = 0; p0 < job.L; p0 += width) {
    __mmask16 masks[kMaxNv];
    lane_masks(p0, job.L, tile.nv, masks);
    for (int64_t b0 = 0; b0 < job.Cout; b0 += tile.mr) {
      const int64_t m = std::min<int64_t>(tile.mr, job.Cout - b0);
      kTiles[size_t(tile.nv)][size_t(m)](packed + b0 * K, job.in + p0, job.plane, job.offsets, job.ntaps, job.Cin,
                                         masks, job.out + b0 * job.ldo + p0, job.ldo);
    }
  }
}

#else

bool direct_conv_available() { return false; }

void direct_conv_image(const DirectConvImage&, const float*, DirectTile) {
  fail("conv2d", "the direct convolution kernel needs AVX-512; this build has none");
}

void direct_conv_weight_image(const DirectConvWeightImage&, DirectTile) {
  fail("conv2d", "the direct convolution kernel needs AVX-512; this build has none");
}

#endif

}  // namespace sn::cpu
