// bench/bench_ops.cpp — the memory-bound CPU kernels of the workloads at their
// training shapes, with the bytes they move per second:
//
//   act/<op>/<pass>       GELU on W3's MLP activations [128·50, 768], SiLU on W4's [16·256, 688]
//   softmax/<pass>        W3's attention scores [128·6·50, 50] (6 heads, 50 tokens)
//   norm/<kind>/<pass>    LayerNorm on W3's [128·50, 192], RMSNorm on W4's [16·256, 256]
//   batchnorm/<pass>      BatchNorm2d in training mode on W2's stages at width 1/8 ([128, 4, 28²],
//                         [128, 8, 14²], [128, 16, 7²]) and half width ([128, 16, 28²],
//                         [128, 32, 14²], [128, 64, 7²]) (stats + apply forward, backward)
//   act/relu_planes/...   ReLU on the first of those (the op that follows each BatchNorm)
//   batchnorm_relu/backward/<fused|separate>  the backward of BatchNorm + ReLU on the half-width
//                         shapes: the CPU backend's fused kernel against the two it replaces
//   libm/<op>             the same forward function as a plain loop over libm's erff / expf on
//                         the same threads: the scalar baseline the vectorised math replaces
//
// bytes/s counts each operand read or written once per call (forward: x and y; backward: the
// incoming gradient, the saved tensor and dx), so it compares with the machine's copy bandwidth.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>

#include "autograd/ops.h"
#include "kernels/backend.h"

using namespace sn;

namespace {

Backend& cpu_kernels() { return backend_for(Device::cpu()); }

Tensor random(Shape shape, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, gen);
}

void set_bytes(benchmark::State& state, int64_t elements, int operands) {
  state.counters["bytes/s"] = benchmark::Counter(double(elements) * 4.0 * operands,
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1024);
}

void activation(benchmark::State& state, Unary op, int64_t rows, int64_t cols, bool backward) {
  Tensor x = random({rows, cols}, 1), g = random({rows, cols}, 2), y = empty({rows, cols}), dx = empty({rows, cols});
  cpu_kernels().unary(op, y, x);
  for (auto _ : state) {
    if (backward) cpu_kernels().unary_backward(op, dx, g, x, y);
    else cpu_kernels().unary(op, y, x);
  }
  set_bytes(state, rows * cols, backward ? 3 : 2);
}

void softmax_rows(benchmark::State& state, bool backward) {
  const int64_t rows = 128 * 6 * 50, cols = 50;
  Tensor x = random({rows, cols}, 3), g = random({rows, cols}, 4), y = empty({rows, cols}), dx = empty({rows, cols});
  cpu_kernels().softmax(y, x, false);
  for (auto _ : state) {
    if (backward) cpu_kernels().softmax_backward(dx, g, y, false);
    else cpu_kernels().softmax(y, x, false);
  }
  set_bytes(state, rows * cols, backward ? 3 : 2);
}

void norm(benchmark::State& state, bool rms, int64_t rows, int64_t cols, bool backward) {
  Tensor x = random({rows, cols}, 5), g = random({rows, cols}, 6), y = empty({rows, cols}), dx = empty({rows, cols});
  Tensor w = random({cols}, 7), b = rms ? Tensor() : random({cols}, 8), dw = zeros({cols}),
         db = rms ? Tensor() : zeros({cols});
  Tensor mean = empty({rows}), rstd = empty({rows});
  cpu_kernels().layer_norm(y, mean, rstd, x, w, b, 1e-5f, rms);
  for (auto _ : state) {
    if (backward) cpu_kernels().layer_norm_backward(dx, dw, db, g, x, mean, rstd, w, rms);
    else cpu_kernels().layer_norm(y, mean, rstd, x, w, b, 1e-5f, rms);
  }
  set_bytes(state, rows * cols, backward ? 3 : 2);
}

// BatchNorm2d as the training step runs it: the batch statistics and the normalisation forward,
// the gradient of input, weight and bias backward.
void batchnorm(benchmark::State& state, bool backward) {
  const int64_t n = 128, c = state.range(0), hw = state.range(1);
  Tensor x = random({n, c, hw, hw}, 9), g = random({n, c, hw, hw}, 10), y = empty({n, c, hw, hw}),
         dx = empty({n, c, hw, hw});
  Tensor w = random({c}, 11), b = random({c}, 12), dw = zeros({c}), db = zeros({c});
  Tensor mean = empty({c}), var = empty({c});
  cpu_kernels().batch_norm_stats(mean, var, x);
  Tensor invstd = empty({c});
  for (int64_t i = 0; i < c; ++i) invstd.data<float>()[i] = 1.f / std::sqrt(var.data<float>()[i] + 1e-5f);
  for (auto _ : state) {
    if (backward) {
      cpu_kernels().batch_norm_backward(dx, dw, db, g, x, mean, invstd, w, true);
    } else {
      cpu_kernels().batch_norm_stats(mean, var, x);
      cpu_kernels().batch_norm_apply(y, x, mean, invstd, w, b);
    }
  }
  set_bytes(state, n * c * hw * hw, backward ? 3 : 2);
}

// The backward of a ResNet block's BatchNorm + ReLU (through the ReLU's mask), fused as the CPU
// backend runs it or as the two kernels the backend interface composes by default.
void batchnorm_relu(benchmark::State& state, bool fused) {
  const int64_t n = 128, c = state.range(0), hw = state.range(1);
  const Shape shape{n, c, hw, hw};
  Tensor x = random(shape, 9), g = random(shape, 10), y = empty(shape), dx = empty(shape);
  Tensor w = random({c}, 11), b = random({c}, 12), dw = zeros({c}), db = zeros({c});
  Tensor mean = empty({c}), var = empty({c}), invstd = empty({c});
  Backend& k = cpu_kernels();
  k.batch_norm_stats(mean, var, x);
  for (int64_t i = 0; i < c; ++i) invstd.data<float>()[i] = 1.f / std::sqrt(var.data<float>()[i] + 1e-5f);
  k.batch_norm_apply_relu(y, x, mean, invstd, w, b, Tensor());
  for (auto _ : state) {
    if (fused) k.batch_norm_relu_backward(dx, dw, db, Tensor(), g, y, x, mean, invstd, w, true);
    else k.Backend::batch_norm_relu_backward(dx, dw, db, Tensor(), g, y, x, mean, invstd, w, true);
  }
  set_bytes(state, n * c * hw * hw, 4);
}

// The scalar baseline: libm per element, split over the same OpenMP threads.
template <class F>
void libm_loop(benchmark::State& state, int64_t rows, int64_t cols, F f) {
  Tensor x = random({rows, cols}, 1), y = empty({rows, cols});
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  const int64_t n = rows * cols;
  for (auto _ : state) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) yp[i] = f(xp[i]);
  }
  set_bytes(state, n, 2);
}

}  // namespace

BENCHMARK_CAPTURE(activation, gelu/forward, Unary::gelu, 128 * 50, 768, false)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(activation, gelu/backward, Unary::gelu, 128 * 50, 768, true)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(libm_loop, gelu/erff, 128 * 50, 768,
                  [](float v) { return 0.5f * v * (1.f + erff(v * 0.70710678f)); })
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(activation, silu/forward, Unary::silu, 16 * 256, 688, false)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(activation, silu/backward, Unary::silu, 16 * 256, 688, true)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(libm_loop, silu/expf, 16 * 256, 688, [](float v) { return v / (1.f + expf(-v)); })
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(activation, relu/forward, Unary::relu, 128 * 50, 768, false)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(activation, relu_planes/forward, Unary::relu, 128 * 16, 28 * 28, false)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(activation, relu_planes/backward, Unary::relu, 128 * 16, 28 * 28, true)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(batchnorm, forward, false)->ArgsProduct({{4, 16}, {28}})->Args({8, 14})->Args({32, 14})
    ->Args({16, 7})->Args({64, 7})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(batchnorm, backward, true)->ArgsProduct({{4, 16}, {28}})->Args({8, 14})->Args({32, 14})
    ->Args({16, 7})->Args({64, 7})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(batchnorm_relu, backward/fused, true)->Args({16, 28})->Args({32, 14})->Args({64, 7})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(batchnorm_relu, backward/separate, false)->Args({16, 28})->Args({32, 14})->Args({64, 7})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(softmax_rows, forward, false)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(softmax_rows, backward, true)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(norm, layer/forward, false, 128 * 50, 192, false)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(norm, layer/backward, false, 128 * 50, 192, true)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(norm, rms/forward, true, 16 * 256, 256, false)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(norm, rms/backward, true, 16 * 256, 256, true)->Unit(benchmark::kMicrosecond)->UseRealTime();

BENCHMARK_MAIN();
