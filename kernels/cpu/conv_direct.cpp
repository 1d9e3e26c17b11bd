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

DirectTile direct_tile_for(int64_t L, int64_t Cout) {
  const IsaKernels& isa = require_active();
  // Cycles per K step, summed over tiles and channel blocks: FMAs issue two per cycle, an
  // accumulator waits 4 cycles for its previous FMA, loads issue two per cycle.
  auto block_cycles = [](int m, int nv) { return std::max({m * nv / 2.0, 4.0, (m + nv) / 2.0}); };
  DirectTile best{1, 1};
  double best_cost = std::numeric_limits<double>::infinity();
  for (int nv = 1; nv <= isa.max_nv; ++nv) {
    const int max_mr = isa.max_mr[size_t(nv)];
    for (int mr : {max_mr, 8, 4}) {
      if (mr > max_mr) continue;
      const int64_t tiles = (L + isa.lanes * nv - 1) / (isa.lanes * nv);
      double per_tile = 0;
      for (int64_t b0 = 0; b0 < Cout; b0 += mr) per_tile += block_cycles(int(std::min<int64_t>(mr, Cout - b0)), nv);
      const double cost = double(tiles) * per_tile;
      if (cost < best_cost - 1e-9) best_cost = cost, best = {nv, mr};
    }
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

void direct_conv_image(const DirectConvImage& job, const float* packed, DirectTile tile) {
  require_active().forward(job, packed, tile);
}

void direct_conv_weight_image(const DirectConvWeightImage& job, DirectTile tile) {
  require_active().weight(job, tile);
}

}  // namespace sn::cpu
