// bench/bench_conv.cpp — the 3×3 convolutions of W2 (fmnist-resnet) on the CPU, per algorithm,
// against the machine's own floating-point peak measured in the same run.
//
//   conv/<pass>/<algorithm>/<stage>/<width>   pass: forward | backward (dx and dW together)
//   peak/fma                                  independent AVX-512 (or AVX2) FMAs on every thread
//
// Stages 1–3 are the stride-1 convolutions of W2 at batch 128: 32, 64, 128 channels over 28², 14²,
// 7² pixels; stage2-down and stage3-down the stride-2 layers that enter stages 2 and 3 (3×3, and the
// 1×1 shortcut), from the previous stage's channels and pixels. width 8 runs the whole filter; width 4 runs the half-width sub-model, i.e. the
// [C/2, C/2] window of the same filter and the window of its gradient (nested views, no copies).
// The algorithms are those of kernels/cpu/conv_shifted.h: im2col (one GEMM per image), shifted
// (the padded planes, one BLAS GEMM per tap) and direct (the planes through the register-tiled
// kernel, AVX-512 where the CPU has it), and direct-avx2 (the same kernel forced to AVX2).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "autograd/ops.h"
#include "core/grad_mode.h"
#include "kernels/backend.h"
#include "kernels/cpu/conv_direct.h"
#include "kernels/cpu/conv_shifted.h"

using namespace sn;

namespace {

constexpr int64_t kBatch = 128;
constexpr int64_t kChannels[3] = {32, 64, 128}, kPixels[3] = {28, 14, 7};

struct Operands {
  Tensor x, w, dw, w_down[2], dw_down[2];  // down: the stride-2 3×3 and 1×1 filters entering the stage
};

// The full-width tensors of a stage; a sub-model uses windows of them.
Operands& stage_operands(int stage) {
  static Operands ops[3];
  Operands& o = ops[stage];
  if (!o.x.defined()) {
    Generator gen(uint64_t(stage) + 1);
    const int64_t C = kChannels[stage], P = kPixels[stage];
    o.x = randn({kBatch, C, P, P}, gen);
    o.w = randn({C, C, 3, 3}, gen) * 0.05f;
    o.dw = zeros({C, C, 3, 3});
    for (int k : {0, 1}) {
      const int64_t K = k == 0 ? 3 : 1;
      o.w_down[k] = randn({C, C / 2, K, K}, gen) * 0.05f;
      o.dw_down[k] = zeros({C, C / 2, K, K});
    }
  }
  return o;
}

// Which layer of a stage: its stride-1 3×3 convolution, or the stride-2 3×3 or 1×1 entering it.
enum class Layer { plain, down3x3, down1x1 };

void conv(benchmark::State& state, bool backward, cpu::ConvAlgorithm algorithm, cpu::DirectIsa isa, Layer layer) {
  const int stage = int(state.range(0)), width = int(state.range(1));
  cpu::set_direct_conv_isa(isa);
  const bool kernel = algorithm == cpu::ConvAlgorithm::direct || algorithm == cpu::ConvAlgorithm::implicit_gemm;
  if (kernel && !cpu::direct_conv_available()) {
    cpu::set_direct_conv_isa(cpu::DirectIsa::automatic);
    state.SkipWithError("the direct kernel does not run on this CPU (or with this instruction set)");
    return;
  }
  NoGradGuard no_grad;
  Operands& full = stage_operands(stage);
  const int64_t C = kChannels[stage] * width / 8, P = kPixels[stage];
  const bool down = layer != Layer::plain;
  const int k = layer == Layer::down1x1 ? 1 : 0;
  const int64_t Cin = down ? C / 2 : C, K = layer == Layer::down1x1 ? 1 : 3;
  const Tensor x = down ? stage_operands(stage - 1).x.narrow(1, 0, Cin) : full.x.narrow(1, 0, C);
  const Tensor w = (down ? full.w_down[k] : full.w).prefix({C, Cin}), dw = (down ? full.dw_down[k] : full.dw).prefix({C, Cin});
  const Tensor y = zeros({kBatch, C, P, P}), dx = zeros(x.sizes());
  Generator gen(7);
  const Tensor dy = randn({kBatch, C, P, P}, gen);
  const int64_t stride = down ? 2 : 1, pad = K / 2;
  const Conv2dGeometry g{stride, stride, pad, pad, 1, 1, 1};
  Backend& be = backend_for(Device::cpu());
  cpu::set_conv_algorithm(algorithm);
  for (auto _ : state) {
    if (backward)
      be.conv2d_backward(dx, dw, Tensor(), dy, x, w, g);
    else
      be.conv2d(y, x, w, Tensor(), g);
  }
  cpu::set_conv_algorithm(cpu::ConvAlgorithm::automatic);
  cpu::set_direct_conv_isa(cpu::DirectIsa::automatic);
  const double flops = 2.0 * double(kBatch) * double(C * Cin * K * K) * double(P * P) * (backward ? 2 : 1);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// The peak: 24 independent FMA chains per thread (enough to cover the FMA latency on two pipes).
void peak_fma(benchmark::State& state) {
#if defined(__AVX512F__) || defined(__AVX2__)
#if defined(__AVX512F__)
  using V = __m512;
  constexpr int lanes = 16;
  auto fma = [](V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); };
  auto set = [](float f) { return _mm512_set1_ps(f); };
  auto store = [](float* f, V v) { _mm512_storeu_ps(f, v); };
#else
  using V = __m256;
  constexpr int lanes = 8;
  auto fma = [](V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); };
  auto set = [](float f) { return _mm256_set1_ps(f); };
  auto store = [](float* f, V v) { _mm256_storeu_ps(f, v); };
#endif
  constexpr int64_t kSteps = 1 << 20;
  const int threads = omp_get_max_threads();
  float sink = 0.f;
  for (auto _ : state) {
#pragma omp parallel reduction(+ : sink)
    {
      V acc[24];
      for (int j = 0; j < 24; ++j) acc[j] = set(0.001f * float(j));
      const V a = set(0.9999f), b = set(1e-4f);
      for (int64_t i = 0; i < kSteps; ++i) {
#pragma GCC unroll 24
        for (int j = 0; j < 24; ++j) acc[j] = fma(acc[j], a, b);
      }
      float f[lanes];
      for (int j = 0; j < 24; ++j) {
        store(f, acc[j]);
        for (int l = 0; l < lanes; ++l) sink += f[l];
      }
    }
  }
  benchmark::DoNotOptimize(sink);
  const double flops = 2.0 * lanes * 24 * double(kSteps) * threads;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
#else
  state.SkipWithError("no AVX2/AVX-512 in this build");
#endif
}

void register_all() {
  benchmark::RegisterBenchmark("peak/fma", peak_fma)->UseRealTime()->Unit(benchmark::kMillisecond);
  struct Algorithm {
    const char* name;
    cpu::ConvAlgorithm algorithm;
    cpu::DirectIsa isa;
  };
  const Algorithm algorithms[] = {{"im2col", cpu::ConvAlgorithm::im2col, cpu::DirectIsa::automatic},
                                  {"shifted", cpu::ConvAlgorithm::shifted, cpu::DirectIsa::automatic},
                                  {"direct", cpu::ConvAlgorithm::direct, cpu::DirectIsa::automatic},
                                  {"implicit-gemm", cpu::ConvAlgorithm::implicit_gemm, cpu::DirectIsa::automatic},
                                  {"auto", cpu::ConvAlgorithm::automatic, cpu::DirectIsa::automatic},
                                  {"direct-avx2", cpu::ConvAlgorithm::direct, cpu::DirectIsa::avx2},
                                  {"implicit-gemm-avx2", cpu::ConvAlgorithm::implicit_gemm, cpu::DirectIsa::avx2}};
  for (bool backward : {false, true})
    for (int stage = 0; stage < 3; ++stage)
      for (int width : {8, 4})
        for (const Algorithm& a : algorithms) {
          const std::string label = std::string("conv/") + (backward ? "backward/" : "forward/") + a.name + "/stage" +
                                    std::to_string(stage + 1) + "/width" + std::to_string(width);
          benchmark::RegisterBenchmark(label.c_str(), [backward, a](benchmark::State& s) {
            conv(s, backward, a.algorithm, a.isa, Layer::plain);
          })->Args({stage, width})->UseRealTime()->Unit(benchmark::kMillisecond);
        }
  for (bool backward : {false, true})
    for (int stage = 1; stage < 3; ++stage)
      for (Layer layer : {Layer::down3x3, Layer::down1x1})
        for (int width : {8, 4})
          for (const Algorithm& a : {algorithms[0], algorithms[2], algorithms[3], algorithms[4]}) {
            const std::string label = std::string("conv/") + (backward ? "backward/" : "forward/") + a.name + "/stage" +
                                      std::to_string(stage + 1) + (layer == Layer::down3x3 ? "-down3x3" : "-down1x1") +
                                      "/width" + std::to_string(width);
            benchmark::RegisterBenchmark(label.c_str(), [backward, a, layer](benchmark::State& s) {
              conv(s, backward, a.algorithm, a.isa, layer);
            })->Args({stage, width})->UseRealTime()->Unit(benchmark::kMillisecond);
          }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
