// bench/bench_gemm.cpp — sliced GEMM, the SortedNet hot path (WORKLOADS.md shapes):
//   forward       Y[B,k]      = X[B,k] · W[:k,:k]ᵀ
//   backward dX   dX[B,k]     = dY[B,k] · W[:k,:k]
//   backward dW   dW[:k,:k]  += dY[B,k]ᵀ · X[B,k]   (accumulated into the window, beta = 1)
// with the full W of 4096×4096. Each shape is measured four ways, adjacent so that their ratios
// come from one run: through sortednet's ops on the window view, the same CBLAS call on the same
// operands (leading dimension 4096), CBLAS on contiguous operands of the same shape (the speed of
// light), and copying the window out first (what a framework without strided views pays).
// Built without BLAS (SN_BLAS=OFF), the "blas" ways call the portable GEMM of kernels/cpu/sgemm.cpp.
//
// few_rows: Y[M,N] = X[M,K] · W[:N,:K]ᵀ for 1–16 rows (decoding: one byte, or the drafted bytes a
// verification pass checks), cycling through 16 dense weights as a model's layers would: the skinny
// kernel (kernels/cpu/gemm_skinny.h), CBLAS, and gemm_rowmajor, which picks between them. (Built
// without BLAS, the "blas" way is gemm_rowmajor too, which then takes the skinny kernel itself.)
#include <benchmark/benchmark.h>
#if SN_WITH_BLAS
#include <cblas.h>
#endif

#include "autograd/ops.h"
#include "core/grad_mode.h"
#include "kernels/cpu/gemm_skinny.h"
#include "kernels/cpu/sgemm.h"

using namespace sn;

namespace {

constexpr int64_t kFull = 4096;

struct Operands {
  Tensor W, dW, X, dY, Y, dX, Wc, dWc;  // Wc, dWc: contiguous k×k copies of the windows
  Tensor Xg;                       // X as a leaf that requires grad (forward_backward)
};

Operands& operands(int64_t B, int64_t k) {
  static Tensor W, dW;
  static int64_t have_B = -1, have_k = -1;
  static Operands ops;
  Generator gen(1);
  if (!W.defined()) {
    W = (randn({kFull, kFull}, gen) * 0.01f).set_requires_grad();
    dW = zeros({kFull, kFull});
  }
  if (have_B != B || have_k != k) {
    ops.W = W;
    ops.dW = dW;
    ops.X = randn({B, k}, gen);
    ops.dY = randn({B, k}, gen);
    ops.Y = zeros({B, k});
    ops.dX = zeros({B, k});
    {
      NoGradGuard no_grad;
      ops.Wc = W.prefix({k, k}).contiguous();
      ops.dWc = zeros({k, k});
    }
    ops.Xg = ops.X.detach().set_requires_grad();
    have_B = B;
    have_k = k;
  }
  return ops;
}

void counters(benchmark::State& state, int64_t B, int64_t k, int gemms) {
  double flops = 2.0 * double(B) * double(k) * double(k) * gemms;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["B"] = double(B);
  state.counters["k"] = double(k);
}

// forward_backward: one training step of the layer through autograd (all three GEMMs).
enum class Pass { forward, backward_data, backward_weight, forward_backward };
enum class Way { sortednet, blas_window, blas_contiguous, copy_then_blas };

// Row-major C = op(A) · op(B) + beta · C: CBLAS itself, or the library's portable GEMM.
void sgemm(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float beta,
           float* C, int ldc) {
#if SN_WITH_BLAS
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.f, A, lda,
              B, ldb, beta, C, ldc);
#else
  cpu::gemm_rowmajor(ta, tb, M, N, K, 1.f, A, lda, B, ldb, beta, C, ldc);
#endif
}

void cblas_pass(Pass pass, Operands& o, int64_t B, int64_t k, const float* w_ptr, int ld, float* dw, int lddw) {
  switch (pass) {
    case Pass::forward:
      sgemm(false, true, int(B), int(k), int(k), o.X.data<float>(), int(k), w_ptr, ld, 0.f, o.Y.data<float>(),
            int(k));
      break;
    case Pass::backward_data:
      sgemm(false, false, int(B), int(k), int(k), o.dY.data<float>(), int(k), w_ptr, ld, 0.f, o.dX.data<float>(),
            int(k));
      break;
    case Pass::backward_weight:
      sgemm(true, false, int(k), int(k), int(B), o.dY.data<float>(), int(k), o.X.data<float>(), int(k), 1.f, dw,
            lddw);
      break;
    case Pass::forward_backward:
      for (Pass p : {Pass::forward, Pass::backward_data, Pass::backward_weight})
        cblas_pass(p, o, B, k, w_ptr, ld, dw, lddw);
      break;
  }
}

void run(benchmark::State& state, Pass pass, Way way) {
  const int64_t B = state.range(0), k = state.range(1);
  Operands& o = operands(B, k);
  if (pass == Pass::forward_backward && way == Way::sortednet) {
    linear(o.Xg, o.W.prefix({k, k})).backward(o.dY);  // warm-up: gradient buffers exist after it
    for (auto _ : state) linear(o.Xg, o.W.prefix({k, k})).backward(o.dY);
    counters(state, B, k, 3);
    return;
  }
  NoGradGuard no_grad;
  Backend& cpu = backend_for(Device::cpu());
  Tensor Wk = o.W.prefix({k, k}), dWk = o.dW.prefix({k, k});
  const bool own_copy = way == Way::blas_contiguous || way == Way::copy_then_blas;
  const float* w_ptr = own_copy ? o.Wc.data<float>() : o.W.data<float>();
  const int ldw = own_copy ? int(k) : int(kFull);
  auto once = [&] {
    if (way == Way::sortednet) {
      switch (pass) {
        case Pass::forward: benchmark::DoNotOptimize(linear(o.X, Wk)); break;
        case Pass::backward_data: benchmark::DoNotOptimize(matmul(o.dY, Wk)); break;
        case Pass::backward_weight: cpu.gemm(dWk, o.dY.t(), o.X, 1.f, 1.f); break;  // as linear's backward
        default: break;
      }
      return;
    }
    const bool packed = way == Way::copy_then_blas, writes_dw = pass == Pass::backward_weight;
    if (packed) {  // the windows packed before use, the gradient window scattered back after
      if (writes_dw) o.dWc.copy_(dWk);
      else o.Wc.copy_(Wk);
    }
    const int ld = packed ? int(k) : ldw;
    const bool in_window = way == Way::blas_window;
    cblas_pass(pass, o, B, k, w_ptr, ld, in_window ? o.dW.data<float>() : o.dWc.data<float>(),
               in_window ? int(kFull) : int(k));
    if (packed && writes_dw) dWk.copy_(o.dWc);
  };
  once();  // warm-up: caches, page faults and allocator outside the timing
  for (auto _ : state) once();
  counters(state, B, k, pass == Pass::forward_backward ? 3 : 1);
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int64_t B : {128, 2048})
    for (int64_t k : {512, 1024, 2048, 4096}) b->Args({B, k});
  b->Unit(benchmark::kMillisecond)->MinTime(0.3)->UseRealTime();
}

enum class FewRowsWay { skinny, blas, dispatch };

void few_rows(benchmark::State& state, FewRowsWay way) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2), ld = K, layers = 16;
  if (way == FewRowsWay::skinny && !cpu::skinny_gemm_applies(false, true, M, N, K)) {
    state.SkipWithError("the skinny kernel does not apply here (no AVX-512, or the shape)");
    return;
  }
  Generator gen(2);
  const Tensor W = randn({layers, N, ld}, gen), X = randn({M, K}, gen), Y = zeros({M, N});
  const float *w = W.data<float>(), *x = X.data<float>();
  float* y = Y.data<float>();
  auto pass = [&] {
    for (int64_t l = 0; l < layers; ++l) {
      const float* wl = w + l * N * ld;
      switch (way) {
        case FewRowsWay::skinny: cpu::skinny_gemm(M, N, K, 1.f, x, K, wl, ld, 0.f, y, N); break;
        case FewRowsWay::blas:
          sgemm(false, true, int(M), int(N), int(K), x, int(K), wl, int(ld), 0.f, y, int(N));
          break;
        case FewRowsWay::dispatch: cpu::gemm_rowmajor(false, true, M, N, K, 1.f, x, K, wl, ld, 0.f, y, N); break;
      }
    }
  };
  pass();
  for (auto _ : state) pass();
  const double weight_bytes = 4.0 * double(layers * N * K);
  // Inverted rates print as times: seconds per layer, with a unit.
  using C = benchmark::Counter;
  state.counters["per_layer"] = C(double(layers), C::kIsIterationInvariantRate | C::kInvert);
  state.counters["weight_GB/s"] = C(weight_bytes * 1e-9, C::kIsIterationInvariantRate);
}

// W4's projections (d 256, SwiGLU 688) and its head, at 1–16 rows.
void few_rows_shapes(benchmark::internal::Benchmark* b) {
  for (auto [N, K] : {std::pair<int64_t, int64_t>{256, 256}, {688, 256}, {256, 688}})
    for (int64_t M : {1, 2, 4, 8, 9, 16}) b->Args({M, N, K});
  b->Unit(benchmark::kMicrosecond)->MinTime(0.2)->UseRealTime();
}

}  // namespace

BENCHMARK_CAPTURE(few_rows, skinny, FewRowsWay::skinny)->Apply(few_rows_shapes);
BENCHMARK_CAPTURE(few_rows, blas, FewRowsWay::blas)->Apply(few_rows_shapes);
BENCHMARK_CAPTURE(few_rows, gemm_rowmajor, FewRowsWay::dispatch)->Apply(few_rows_shapes);

#define SN_GEMM_BENCH(pass, way) \
  BENCHMARK_CAPTURE(run, pass##_##way, Pass::pass, Way::way)->Apply(shapes)

SN_GEMM_BENCH(forward, sortednet);
SN_GEMM_BENCH(forward, blas_window);
SN_GEMM_BENCH(forward, blas_contiguous);
SN_GEMM_BENCH(forward, copy_then_blas);
SN_GEMM_BENCH(backward_data, sortednet);
SN_GEMM_BENCH(backward_data, blas_window);
SN_GEMM_BENCH(backward_data, blas_contiguous);
SN_GEMM_BENCH(backward_data, copy_then_blas);
SN_GEMM_BENCH(backward_weight, sortednet);
SN_GEMM_BENCH(backward_weight, blas_window);
SN_GEMM_BENCH(backward_weight, blas_contiguous);
SN_GEMM_BENCH(backward_weight, copy_then_blas);
SN_GEMM_BENCH(forward_backward, sortednet);
SN_GEMM_BENCH(forward_backward, blas_window);

BENCHMARK_MAIN();
