// kernels/cpu/conv_direct_kernels.h — the direct convolution's tile kernels, written once over a
// vector instruction set and compiled once per instruction set (conv_direct_avx512.cpp,
// conv_direct_avx2.cpp, each with its own compiler flags); conv_direct.cpp picks one at run time.
//
// An ISA type V supplies: Reg and Mask types, lanes, max_nv and max_mr[nv] (the largest tiles
// whose MR·NV accumulators, NV operands and a broadcast fit its registers), and zero, set1,
// load (masked; masked-off lanes are not read), store (masked), fma and mask(lanes_on).
// Everything here has internal linkage: each translation unit gets its own copy for its ISA.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "kernels/cpu/conv_direct.h"

namespace sn::cpu::direct_detail {

// One ISA's entry points and tile limits, as conv_direct.cpp sees them.
struct IsaKernels {
  const char* name;
  int lanes, max_nv;
  std::array<int, 5> max_mr;  // per nv, 1..max_nv
  void (*forward)(const DirectConvImage&, const float* packed, DirectTile);
  void (*weight)(const DirectConvWeightImage&, DirectTile);
  void (*gemm)(const GemmConvImage&, const float* packed, DirectTile);
};

// nullptr where that translation unit could not be built for the ISA (not x86-64, or a compiler
// without the flags); conv_direct.cpp also checks that the CPU has it.
const IsaKernels* avx512_kernels();
const IsaKernels* avx2_kernels();

namespace {

constexpr int kMaxRows = 16;  // no ISA has a larger max_mr

// The lane masks of a tile's vectors (a struct, so that function pointer types name no vector
// type, whose alignment attributes a template argument would drop).
template <class V>
struct Masks {
  typename V::Mask of[4];
};

// MR × lanes·NV accumulators, meant to live in registers (every loop over r and v unrolls).
template <class V, int MR, int NV>
struct Tile {
  typename V::Reg acc[MR][NV];

  [[gnu::always_inline]] void zero() {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
  }
  // Row r of the tile from / to p + r·ld.
  [[gnu::always_inline]] void load(const float* p, int64_t ld, const Masks<V>& masks) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = V::load(masks.of[v], p + r * ld + V::lanes * v);
  }
  [[gnu::always_inline]] void store(float* p, int64_t ld, const Masks<V>& masks) const {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) V::store(masks.of[v], p + r * ld + V::lanes * v, acc[r][v]);
  }
  // acc[r] += a[r·lda] · b: one row of lanes·NV floats of b, MR broadcasts.
  [[gnu::always_inline]] void add_outer(const float* a, int64_t lda, const float* b, const Masks<V>& masks) {
    typename V::Reg bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = V::load(masks.of[v], b + V::lanes * v);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const typename V::Reg av = V::set1(a[r * lda]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(av, bv[v], acc[r][v]);
    }
  }
};

// One MR × lanes·NV output tile: `a` is the block's packed filter [ci][tap][MR], `in` the planes
// already advanced to the tile's first position; masks.of[v] selects the lanes below L.
template <class V, int MR, int NV>
void tile_kernel(const float* a, const float* in, int64_t plane, const int64_t* offsets, int64_t ntaps, int64_t Cin,
                 const Masks<V>& masks, float* out, int64_t ldo) {
  Tile<V, MR, NV> tile;
  tile.zero();
  for (int64_t ci = 0; ci < Cin; ++ci, in += plane)
    for (int64_t t = 0; t < ntaps; ++t, a += MR) tile.add_outer(a, 1, in + offsets[t], masks);
  tile.store(out, ldo, masks);
}

// One MR × lanes·NV tile of the filter gradient of one tap (see direct_conv_weight_image),
// accumulated into dw.
template <class V, int MR, int NV>
void weight_tile_kernel(const float* dy, int64_t ld_dy, const float* x_t, int64_t ld_x, int64_t L, int64_t row_len,
                        int64_t row_stride, const Masks<V>& masks, float* dw, int64_t ld_w) {
  Tile<V, MR, NV> tile;
  tile.load(dw, ld_w, masks);
  for (int64_t p0 = 0; p0 < L; p0 += row_stride) {
    const int64_t end = std::min(p0 + row_len, L);
    for (int64_t p = p0; p < end; ++p) tile.add_outer(dy + p, ld_dy, x_t + p * ld_x, masks);
  }
  tile.store(dw, ld_w, masks);
}

// One MR × lanes·NV tile of the implicit GEMM (see gemm_conv_image): `a` is the tile's panel
// [tap][16 channels][MR][16], `w` the channel block's packed filter [tap][ci][nr].
template <class V, int MR, int NV>
void gemm_tile_kernel(const float* a, const float* w, int64_t ntaps, int64_t Cin, int64_t nr, const Masks<V>& masks,
                      float* out, int64_t ldo) {
  Tile<V, MR, NV> tile;
  tile.zero();
  for (int64_t t = 0; t < ntaps; ++t)
    for (int64_t c0 = 0; c0 < Cin; c0 += 16, a += MR * 16) {
      const int64_t kc = std::min<int64_t>(16, Cin - c0);
      for (int64_t c = 0; c < kc; ++c, w += nr) tile.add_outer(a + c, 16, w, masks);
    }
  tile.store(out, ldo, masks);
}

// Each kernel family as a picker: Pick::template at<MR, NV>() is its MR × lanes·NV instance.
template <class V>
struct ForwardKernels {
  template <int MR, int NV>
  static constexpr auto at() { return &tile_kernel<V, MR, NV>; }
};
template <class V>
struct WeightKernels {
  template <int MR, int NV>
  static constexpr auto at() { return &weight_tile_kernel<V, MR, NV>; }
};
template <class V>
struct GemmKernels {
  template <int MR, int NV>
  static constexpr auto at() { return &gemm_tile_kernel<V, MR, NV>; }
};

template <class Pick>
using KernelFn = decltype(Pick::template at<1, 1>());
template <class Pick>
using KernelRow = std::array<KernelFn<Pick>, kMaxRows + 1>;

// Row nv of a kernel table: entry m is the kernel for m rows (1 ≤ m ≤ max_mr[nv]).
template <class Pick, int NV, int... M>
constexpr KernelRow<Pick> kernel_row(std::integer_sequence<int, M...>) {
  KernelRow<Pick> row{};
  ((row[size_t(M + 1)] = Pick::template at<M + 1, NV>()), ...);
  return row;
}

// table[nv][m] for every tile the ISA V's registers hold.
template <class V, class Pick, int... NV>
constexpr std::array<KernelRow<Pick>, 5> kernel_table(std::integer_sequence<int, NV...>) {
  std::array<KernelRow<Pick>, 5> table{};
  ((table[size_t(NV + 1)] = kernel_row<Pick, NV + 1>(std::make_integer_sequence<int, V::max_mr[NV + 1]>())), ...);
  return table;
}
template <class V, class Pick>
constexpr std::array<KernelRow<Pick>, 5> kernel_table() {
  return kernel_table<V, Pick>(std::make_integer_sequence<int, V::max_nv>());
}

// The masks of the vectors of a tile starting at lane `first` of `count`.
template <class V>
Masks<V> lane_masks(int64_t first, int64_t count, int nv) {
  Masks<V> masks;
  for (int v = 0; v < nv; ++v) masks.of[v] = V::mask(std::clamp<int64_t>(count - first - V::lanes * v, 0, V::lanes));
  return masks;
}

template <class V>
void forward_image(const DirectConvImage& job, const float* packed, DirectTile tile) {
  static constexpr auto kTiles = kernel_table<V, ForwardKernels<V>>();
  const int64_t K = job.ntaps * job.Cin, width = V::lanes * tile.nv;
  for (int64_t p0 = 0; p0 < job.L; p0 += width) {
    const Masks<V> masks = lane_masks<V>(p0, job.L, tile.nv);
    for (int64_t b0 = 0; b0 < job.Cout; b0 += tile.mr) {
      const int64_t m = std::min<int64_t>(tile.mr, job.Cout - b0);
      kTiles[size_t(tile.nv)][size_t(m)](packed + b0 * K, job.in + p0, job.plane, job.offsets, job.ntaps, job.Cin,
                                         masks, job.out + b0 * job.ldo + p0, job.ldo);
    }
  }
}

template <class V>
void weight_image(const DirectConvWeightImage& job, DirectTile tile) {
  static constexpr auto kTiles = kernel_table<V, WeightKernels<V>>();
  const int64_t width = V::lanes * tile.nv, tap_size = job.Cout * job.Cin;
  for (int64_t c0 = 0; c0 < job.Cin; c0 += width) {
    const Masks<V> masks = lane_masks<V>(c0, job.Cin, tile.nv);
    for (int64_t t = 0; t < job.ntaps; ++t)
      for (int64_t b0 = 0; b0 < job.Cout; b0 += tile.mr) {
        const int64_t m = std::min<int64_t>(tile.mr, job.Cout - b0);
        kTiles[size_t(tile.nv)][size_t(m)](job.dy + b0 * job.ld_dy, job.ld_dy, job.x_t + job.offsets[t] * job.Cin + c0,
                                           job.Cin, job.L, job.row_len, job.row_stride, masks,
                                           job.dw + t * tap_size + b0 * job.Cin + c0, job.Cin);
      }
  }
}

// n ≤ 16 floats from src to dst, in vectors (only the n floats are read and written).
template <class V>
[[gnu::always_inline]] inline void copy_short(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += V::lanes) {
    const typename V::Mask m = V::mask(std::min<int64_t>(n - i, V::lanes));
    V::store(m, dst + i, V::load(m, src + i));
  }
}

// The panel of positions p0 .. p0 + m − 1: panel[t][cb][r][c] = in_t[(base[p0 + r] + offset[t])·Cin + 16·cb + c].
template <class V>
void pack_panel(const GemmConvImage& job, int64_t p0, int64_t m) {
  float* dst = job.panel;
  for (int64_t t = 0; t < job.ntaps; ++t)
    for (int64_t c0 = 0; c0 < job.Cin; c0 += 16, dst += m * 16) {
      const int64_t kc = std::min<int64_t>(16, job.Cin - c0);
      for (int64_t r = 0; r < m; ++r)
        copy_short<V>(job.in_t + (job.bases[p0 + r] + job.offsets[t]) * job.Cin + c0, dst + r * 16, kc);
    }
}

template <class V>
void gemm_image(const GemmConvImage& job, const float* packed, DirectTile tile) {
  static constexpr auto kTiles = kernel_table<V, GemmKernels<V>>();
  const int64_t nr = V::lanes * tile.nv, block = job.ntaps * job.Cin * nr;
  for (int64_t p0 = 0; p0 < job.P; p0 += tile.mr) {
    const int64_t m = std::min<int64_t>(tile.mr, job.P - p0);
    pack_panel<V>(job, p0, m);
    for (int64_t b0 = 0, b = 0; b0 < job.Cout; b0 += nr, ++b)
      kTiles[size_t(tile.nv)][size_t(m)](job.panel, packed + b * block, job.ntaps, job.Cin, nr,
                                         lane_masks<V>(b0, job.Cout, tile.nv), job.out + p0 * job.ldo + b0, job.ldo);
  }
}

template <class V>
IsaKernels kernels_for(const char* name) {
  IsaKernels k{name, V::lanes, V::max_nv, {}, &forward_image<V>, &weight_image<V>, &gemm_image<V>};
  for (int nv = 1; nv <= V::max_nv; ++nv) k.max_mr[size_t(nv)] = V::max_mr[size_t(nv)];
  return k;
}

}  // namespace
}  // namespace sn::cpu::direct_detail
