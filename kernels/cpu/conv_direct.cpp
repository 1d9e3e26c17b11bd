// kernels/cpu/conv_direct.cpp — the direct convolution: tile choice, filter packing, and the
// choice of instruction set at run time (the kernels: conv_direct_kernels.h).
#include "kernels/cpu/conv_direct.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <string>

#include "core/error.h"
#include "kernels/cpu/conv_direct_kernels.h"

namespace sn::cpu {
namespace {

using direct_detail::IsaKernels;

bool cpu_has(DirectIsa isa) {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  if (isa == DirectIsa::avx512) return __builtin_cpu_supports("avx512f");
  if (isa == DirectIsa::avx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return false;
}

// The kernels of an instruction set, if this build has them and the CPU runs them.
const IsaKernels* kernels_of(DirectIsa isa) {
  const IsaKernels* k = isa == DirectIsa::avx512 ? direct_detail::avx512_kernels()
                        : isa == DirectIsa::avx2 ? direct_detail::avx2_kernels()
                                                 : nullptr;
  return k && cpu_has(isa) ? k : nullptr;
}

DirectIsa isa_from_environment() {
  const char* env = std::getenv("SN_CONV_ISA");
  if (env && std::string(env) == "avx512") return DirectIsa::avx512;
  if (env && std::string(env) == "avx2") return DirectIsa::avx2;
  return DirectIsa::automatic;
}

std::atomic<DirectIsa> g_isa{isa_from_environment()};

const IsaKernels* active() {
  const DirectIsa isa = g_isa.load();
  if (isa != DirectIsa::automatic) return kernels_of(isa);
  if (const IsaKernels* k = kernels_of(DirectIsa::avx512)) return k;
  return kernels_of(DirectIsa::avx2);
}

const IsaKernels& require_active() {
  const IsaKernels* k = active();
  if (!k) fail("conv2d", "the direct convolution kernel is not available on this CPU or in this build");
  return *k;
}

}  // namespace

void set_direct_conv_isa(DirectIsa isa) { g_isa.store(isa); }

const char* direct_conv_isa() {
  const IsaKernels* k = active();
  return k ? k->name : "none";
}

bool direct_conv_available() { return active() != nullptr; }

namespace {

// Cycles per K step of an m × lanes·nv block: FMAs issue two per cycle, an accumulator waits 4
// cycles for its previous FMA, loads and broadcasts issue two per cycle.
double block_cycles(int64_t m, int nv) { return std::max({double(m * nv) / 2.0, 4.0, double(m + nv) / 2.0}); }

}  // namespace

double direct_conv_cost(int64_t L, int64_t Cout, DirectTile tile) {
  const int64_t width = require_active().lanes * tile.nv, tiles = (L + width - 1) / width;
  double per_tile = 0;
  for (int64_t b0 = 0; b0 < Cout; b0 += tile.mr) per_tile += block_cycles(std::min<int64_t>(tile.mr, Cout - b0), tile.nv);
  return double(tiles) * per_tile;
}

DirectTile direct_tile_for(int64_t L, int64_t Cout) {
  const IsaKernels& isa = require_active();
  DirectTile best{1, 1};
  double best_cost = std::numeric_limits<double>::infinity();
  for (int nv = 1; nv <= isa.max_nv; ++nv) {
    const int max_mr = isa.max_mr[size_t(nv)];
    for (int mr : {max_mr, 8, 4}) {
      if (mr > max_mr) continue;
      const double cost = direct_conv_cost(L, Cout, {nv, mr});
      if (cost < best_cost - 1e-9) best_cost = cost, best = {nv, mr};
    }
  }
  return best;
}

namespace {

// The implicit GEMM's kernel time, in the same units.
double gemm_kernel_cost(int64_t P, int64_t Cout, DirectTile tile) {
  const int64_t nr = require_active().lanes * tile.nv, blocks = (Cout + nr - 1) / nr;
  const int64_t full = P / tile.mr, rest = P % tile.mr;
  return double(blocks) * (double(full) * block_cycles(tile.mr, tile.nv) + (rest ? block_cycles(rest, tile.nv) : 0.0));
}

}  // namespace

double gemm_conv_cost(int64_t P, int64_t Cout, int64_t Cin, int64_t ntaps, DirectTile tile) {
  // Besides the kernel: per position, the panel copies (a load and a store per tap and 16 input
  // channels) and the transposes of its input and output channels into and out of channels-last
  // order, about a cycle per float (fitted to bench_conv's W2 layers, where it decides between the
  // kernels within a few percent), spread over the ntaps·Cin steps.
  const double per_position = 2.0 * double(ntaps * ((Cin + 15) / 16)) + double(Cin + Cout);
  return gemm_kernel_cost(P, Cout, tile) + double(P) * per_position / double(ntaps * Cin);
}

DirectTile gemm_conv_tile_for(int64_t P, int64_t Cout) {
  const IsaKernels& isa = require_active();
  DirectTile best{1, 1};
  double best_cost = std::numeric_limits<double>::infinity();
  for (int nv = 1; nv <= isa.max_nv; ++nv)
    for (int mr = isa.max_mr[size_t(nv)]; mr >= 1; --mr) {  // the largest tile among equals
      const double cost = gemm_kernel_cost(P, Cout, {nv, mr});
      if (cost < best_cost - 1e-9) best_cost = cost, best = {nv, mr};
    }
  return best;
}

int64_t gemm_conv_packed_floats(int64_t ntaps, int64_t Cout, int64_t Cin, DirectTile tile) {
  const int64_t nr = require_active().lanes * tile.nv;
  return (Cout + nr - 1) / nr * nr * ntaps * Cin;
}

int64_t gemm_conv_panel_floats(int64_t ntaps, int64_t Cin, DirectTile tile) {
  return ntaps * ((Cin + 15) / 16) * 16 * tile.mr;
}

void pack_gemm_conv_filter(const float* taps, int64_t ntaps, int64_t Cout, int64_t Cin, DirectTile tile, float* packed) {
  const int64_t nr = require_active().lanes * tile.nv, blocks = (Cout + nr - 1) / nr;
#pragma omp parallel for schedule(static) if (ntaps * Cout * Cin >= (1 << 15))
  for (int64_t block = 0; block < blocks; ++block) {
    float* dst = packed + block * ntaps * Cin * nr;
    for (int64_t t = 0; t < ntaps; ++t)
      for (int64_t ci = 0; ci < Cin; ++ci, dst += nr)
        for (int64_t j = 0; j < nr; ++j) {
          const int64_t co = block * nr + j;
          dst[j] = co < Cout ? taps[(t * Cout + co) * Cin + ci] : 0.f;
        }
  }
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

void direct_conv_image(const DirectConvImage& job, const float* packed, DirectTile tile) {
  require_active().forward(job, packed, tile);
}

void direct_conv_weight_image(const DirectConvWeightImage& job, DirectTile tile) {
  require_active().weight(job, tile);
}

void gemm_conv_image(const GemmConvImage& job, const float* packed, DirectTile tile) {
  require_active().gemm(job, packed, tile);
}

}  // namespace sn::cpu
