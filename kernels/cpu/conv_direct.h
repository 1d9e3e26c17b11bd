// kernels/cpu/conv_direct.h — the register-tiled kernel behind the shifted convolution.
//
// One image of a stride-1 convolution over a zero-padded plane set (conv_shifted.h):
//
//   out[co, p] = Σ_tap Σ_ci  w[tap, co, ci] · in[ci·plane + offset[tap] + p],   p < L
//
// A BLAS call per tap (K = Cin) re-reads and re-writes the whole output KH·KW times and runs
// OpenBLAS's small-matrix kernels. This kernel instead keeps an MR × (lanes·NV) tile of the
// output in vector registers across all KH·KW·Cin products, reading the plane in place (the taps
// are just pointer offsets) and a filter packed so that each step broadcasts MR consecutive floats.
// It is compiled for AVX-512 and for AVX2 + FMA (x86-64, GCC or Clang) whatever the build's
// -march, and the best one the CPU has is chosen at run time; elsewhere direct_conv_available()
// is false and callers use the BLAS path.
#pragma once

#include <cstdint>

namespace sn::cpu {

bool direct_conv_available();

// Which instruction set the kernel uses: the best the CPU has (automatic), or a forced one (tests,
// comparisons; also SN_CONV_ISA=avx512|avx2). A forced one that the CPU or the build lacks makes
// the kernel unavailable.
enum class DirectIsa { automatic, avx512, avx2 };
void set_direct_conv_isa(DirectIsa isa);
const char* direct_conv_isa();  // "avx512", "avx2", or "none"

// The output tile: NV vectors of positions by MR channels (the last channel block may be
// smaller). Chosen per shape by a cycle estimate: lanes wasted past L on the last tile and
// channel blocks too small to hide the FMA latency both cost.
struct DirectTile {
  int nv, mr;
};
DirectTile direct_tile_for(int64_t L, int64_t Cout);
// The estimated cycles per reduction step (one input channel of one tap) of a tile choice.
double direct_conv_cost(int64_t L, int64_t Cout, DirectTile tile);

// Writes the filter in the kernel's order into packed (ntaps·Cout·Cin floats): blocks of mr
// output channels (the last may be smaller), each [ci][tap][mr] — all taps of one input plane
// in a row, so that consecutive steps read neighbouring rows of the same plane. taps[t][co][ci] is the filter of
// tap t (a [Cout, Cin] matrix per tap).
void pack_direct_filter(const float* taps, int64_t ntaps, int64_t Cout, int64_t Cin, int mr, float* packed);

struct DirectConvImage {
  const float* in;         // channel ci's plane at in + ci·plane
  int64_t plane;           // floats between channel planes
  const int64_t* offsets;  // ntaps offsets into a plane
  int64_t ntaps, Cin, Cout;
  int64_t L;               // output positions computed
  float* out;              // out[co·ldo + p], written (not accumulated)
  int64_t ldo;
};

// Runs one image with a filter packed by pack_direct_filter(..., tile.mr).
void direct_conv_image(const DirectConvImage& job, const float* packed, DirectTile tile);

// The filter gradient of one image, accumulated:
//
//   dw[tap, co, ci] += Σ_p dy[co·ld_dy + p] · x_t[(offset[tap] + p)·Cin + ci]
//
// over the output positions p: rows of row_len positions every row_stride, up to L. The columns
// between rows (a padded plane's overhang) are skipped, not multiplied by zero.
//
// x_t is the padded plane set in channels-last order ([position][ci]), so a tap is a row offset
// and the kernel keeps an MR × lanes·NV tile of dw (channels co by ci) in registers over all L
// positions: one vector load of x_t and MR broadcasts of dy per position.
struct DirectConvWeightImage {
  const float* dy;         // dy[co·ld_dy + p], zero where p is not an output position
  int64_t ld_dy;
  const float* x_t;        // [position][Cin]
  const int64_t* offsets;  // ntaps offsets (in positions)
  int64_t ntaps, Cin, Cout, L;
  int64_t row_len, row_stride;
  float* dw;               // [tap][Cout][Cin], accumulated
};
// tile: direct_tile_for(Cin, Cout) — the vectors run along Cin here.
void direct_conv_weight_image(const DirectConvWeightImage& job, DirectTile tile);

// The same convolution as an implicit GEMM over a channels-last input, with the vectors along the
// output channels instead of the positions:
//
//   out[p·ldo + co] = Σ_tap Σ_ci in_t[(base[p] + offset[tap])·Cin + ci] · w[tap][co][ci],   p < P
//
// The output positions are listed (base[p]), so a padded plane's overhang and a stride's skipped
// positions cost nothing; the planar kernel computes them in idle lanes (on W2's 7 × 7 planes, 2
// columns of every 9). Layers with few output channels leave this kernel's lanes idle instead:
// conv_shifted.cpp compares direct_conv_cost and gemm_conv_cost per shape. A tile is MR positions
// by lanes·NV channels; each step broadcasts MR inputs from a panel of the tile's positions
// (packed per tile: [tap][16 channels][MR][16]) and loads NV vectors of the packed filter.
struct GemmConvImage {
  const float* in_t;       // [position][Cin]
  int64_t Cin;
  const int64_t* bases;    // P output positions, each the input position its first tap reads less offset[0]
  int64_t P;
  const int64_t* offsets;  // ntaps offsets (in positions)
  int64_t ntaps, Cout;
  float* out;              // out[p·ldo + co], written
  int64_t ldo;
  float* panel;            // gemm_conv_panel_floats(ntaps, Cin, tile) floats of scratch
};
DirectTile gemm_conv_tile_for(int64_t P, int64_t Cout);
// The estimated cycles per reduction step, in direct_conv_cost's units, its overheads included.
double gemm_conv_cost(int64_t P, int64_t Cout, int64_t Cin, int64_t ntaps, DirectTile tile);
int64_t gemm_conv_packed_floats(int64_t ntaps, int64_t Cout, int64_t Cin, DirectTile tile);
int64_t gemm_conv_panel_floats(int64_t ntaps, int64_t Cin, DirectTile tile);
// taps[t][co][ci] (as for pack_direct_filter) into packed: blocks of lanes·NV output channels
// (the last zero-filled), each [tap][ci][lanes·NV].
void pack_gemm_conv_filter(const float* taps, int64_t ntaps, int64_t Cout, int64_t Cin, DirectTile tile, float* packed);
void gemm_conv_image(const GemmConvImage& job, const float* packed, DirectTile tile);

}  // namespace sn::cpu
