// bench/bench_gpu.cpp — the sliced kernels on the GPU, timed with CUDA events around each call
// (the L2 cache flushed before each one), reported as Google Benchmark manual time.
//
// GEMM (WORKLOADS.md shapes, W of 4096×4096, TF32 as by default):
//   forward  Y[B,k] = X[B,k] · W[:k,:k]ᵀ      backward dX[B,k] = dY[B,k] · W[:k,:k]
//   backward dW[:k,:k] += dY[B,k]ᵀ · X[B,k]   (into the window, beta = 1)
// each twice, adjacent: `window` runs sortednet's GEMM on the window views (leading dimension
// 4096, no copy) and `contiguous` calls cuBLAS directly on packed k×k operands of the same shape.
// Memory-bound kernels at large sizes report GB/s (bytes each must move: inputs read once,
// outputs written once) beside a device-to-device copy of the same bytes, the ceiling.
#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include "autograd/ops.h"
#include "core/grad_mode.h"
#include "kernels/cuda/cuda_backend.h"

using namespace sn;

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "bench_gpu: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// Times fn with events after overwriting a buffer larger than L2, so no operand starts cached.
template <class Fn>
void run_timed(benchmark::State& state, Fn fn) {
  static void* flush = nullptr;
  static size_t flush_bytes = 0;
  if (!flush) {
    int dev = 0, l2 = 0;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev), "L2 size");
    flush_bytes = size_t(l2) * 4;
    check(cudaMalloc(&flush, flush_bytes), "flush buffer");
  }
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "event");
  check(cudaEventCreate(&stop), "event");
  fn();  // warm-up (handles, caches of the allocator)
  check(cudaDeviceSynchronize(), "warm-up");
  for (auto _ : state) {
    check(cudaMemsetAsync(flush, int(state.iterations() & 0xff), flush_bytes, current_stream()), "flush");
    check(cudaEventRecord(start, current_stream()), "record");
    fn();
    check(cudaEventRecord(stop, current_stream()), "record");
    check(cudaEventSynchronize(stop), "sync");
    float ms = 0.f;
    check(cudaEventElapsedTime(&ms, start, stop), "elapsed");
    state.SetIterationTime(double(ms) * 1e-3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
}

bool have_gpu(benchmark::State& state) {
  if (cuda_available()) return true;
  state.SkipWithError("no CUDA device present");
  return false;
}

Tensor gpu_randn(const Shape& sizes, uint64_t seed, float scale = 1.f) {
  Generator gen(seed);
  return (randn(sizes, gen, Device::cuda()) * scale).detach();
}

// ---- GEMM on nested windows vs cuBLAS on contiguous operands -----------------------------

constexpr int64_t kFull = 4096;
enum Kind { kForward = 0, kBackwardDx = 1, kBackwardDw = 2 };

struct GemmOperands {
  Tensor W, dW;          // the full 4096² parameter and its gradient
  Tensor X, dY, Y, dX;   // [B, k]
  Tensor Wc, dWc;        // packed k×k copies of the windows
};

GemmOperands& gemm_operands(int64_t B, int64_t k) {
  static GemmOperands ops;
  static int64_t have_B = -1, have_k = -1;
  if (!ops.W.defined()) {
    ops.W = gpu_randn({kFull, kFull}, 1, 0.01f);
    ops.dW = gpu_randn({kFull, kFull}, 2, 0.01f);
  }
  if (have_B != B || have_k != k) {
    ops.X = gpu_randn({B, k}, 3);
    ops.dY = gpu_randn({B, k}, 4);
    ops.Y = gpu_randn({B, k}, 5);
    ops.dX = gpu_randn({B, k}, 6);
    ops.Wc = ops.W.prefix({k, k}).contiguous().detach();
    ops.dWc = ops.dW.prefix({k, k}).contiguous().detach();
    have_B = B;
    have_k = k;
  }
  return ops;
}

cublasHandle_t bench_handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t c = nullptr;
    if (cublasCreate(&c) != CUBLAS_STATUS_SUCCESS) {
      std::fprintf(stderr, "bench_gpu: cublasCreate failed\n");
      std::exit(1);
    }
    return c;
  }();
  cublasSetStream(h, current_stream());
  return h;
}

// Row-major C[M,N] = alpha A B + beta C through column-major cuBLAS (C^T = B^T A^T).
void cublas_rowmajor(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                     int64_t ldb, float beta, float* C, int64_t ldc) {
  const float alpha = 1.f;
  cublasStatus_t st = cublasGemmEx(bench_handle(), tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   int(N), int(M), int(K), &alpha, B, CUDA_R_32F, int(ldb), A, CUDA_R_32F, int(lda),
                                   &beta, C, CUDA_R_32F, int(ldc),
                                   cuda_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "bench_gpu: cublasGemmEx failed (%d)\n", int(st));
    std::exit(1);
  }
}

float* f(const Tensor& t) { return static_cast<float*>(t.data_ptr()); }

void gemm_bench(benchmark::State& state, Kind kind, bool window) {
  if (!have_gpu(state)) return;
  const int64_t B = state.range(0), k = state.range(1);
  GemmOperands& o = gemm_operands(B, k);
  Backend& be = backend_for(Device::cuda());
  NoGradGuard no_grad;
  const Tensor w = o.W.prefix({k, k}), dw = o.dW.prefix({k, k});
  std::function<void()> fn;
  if (window) {
    if (kind == kForward) fn = [&] { be.gemm(o.Y, o.X, w.t(), 1.f, 0.f); };
    if (kind == kBackwardDx) fn = [&] { be.gemm(o.dX, o.dY, w, 1.f, 0.f); };
    if (kind == kBackwardDw) fn = [&] { be.gemm(dw, o.dY.t(), o.X, 1.f, 1.f); };
  } else {
    if (kind == kForward) fn = [&] { cublas_rowmajor(false, true, B, k, k, f(o.X), k, f(o.Wc), k, 0.f, f(o.Y), k); };
    if (kind == kBackwardDx) fn = [&] { cublas_rowmajor(false, false, B, k, k, f(o.dY), k, f(o.Wc), k, 0.f, f(o.dX), k); };
    if (kind == kBackwardDw) fn = [&] { cublas_rowmajor(true, false, k, k, B, f(o.dY), k, f(o.X), k, 1.f, f(o.dWc), k); };
  }
  run_timed(state, fn);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(B) * double(k) * double(k) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void gemm_args(benchmark::internal::Benchmark* b) {
  for (int64_t B : {128, 2048})
    for (int64_t k : {512, 1024, 2048, 4096}) b->Args({B, k});
  b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.2);
}

BENCHMARK_CAPTURE(gemm_bench, forward_window, kForward, true)->Apply(gemm_args);
BENCHMARK_CAPTURE(gemm_bench, forward_contiguous, kForward, false)->Apply(gemm_args);
BENCHMARK_CAPTURE(gemm_bench, backward_dx_window, kBackwardDx, true)->Apply(gemm_args);
BENCHMARK_CAPTURE(gemm_bench, backward_dx_contiguous, kBackwardDx, false)->Apply(gemm_args);
BENCHMARK_CAPTURE(gemm_bench, backward_dw_window, kBackwardDw, true)->Apply(gemm_args);
BENCHMARK_CAPTURE(gemm_bench, backward_dw_contiguous, kBackwardDw, false)->Apply(gemm_args);

// ---- memory-bound kernels vs a device copy -----------------------------------------------

enum Op { kCopy, kRelu, kAdd, kReluWindow, kSoftmax, kLogSoftmax, kLayerNorm, kRmsNorm, kCrossEntropy, kAdamW };

void bandwidth_bench(benchmark::State& state, Op op) {
  if (!have_gpu(state)) return;
  NoGradGuard no_grad;
  Backend& be = backend_for(Device::cuda());
  const int64_t R = 16384, C = 4096;  // 64 M floats, 256 MiB per tensor
  static Tensor x, y, z, w, b, mean, rstd, wide, target, loss, lse, m, v;
  if (!x.defined()) {
    x = gpu_randn({R, C}, 10);
    y = gpu_randn({R, C}, 11);
    z = gpu_randn({R, C}, 12);
    w = gpu_randn({C}, 13);
    b = gpu_randn({C}, 14);
    mean = gpu_randn({R}, 15);
    rstd = gpu_randn({R}, 16);
    wide = gpu_randn({R, C + 1024}, 17);
    Generator gen(18);
    target = (rand({R}, gen, Device::cuda()) * float(C - 1)).to(DType::i64);
    loss = gpu_randn({R}, 19);
    lse = gpu_randn({R}, 20);
    m = gpu_randn({R, C}, 21);
    v = abs(gpu_randn({R, C}, 22)).detach();
  }
  const double n = double(R) * double(C), fb = sizeof(float);
  double bytes = 0;
  std::function<void()> fn;
  switch (op) {
    case kCopy: fn = [&] { be.copy(y, x); }; bytes = 2 * n * fb; break;
    case kRelu: fn = [&] { be.unary(Unary::relu, y, x); }; bytes = 2 * n * fb; break;
    case kAdd: fn = [&] { be.binary(Binary::add, z, x, y); }; bytes = 3 * n * fb; break;
    case kReluWindow:  // the [R, C] window of a [R, C + 1024] activation, written into y
      fn = [&] { be.unary(Unary::relu, y, wide.prefix({R, C})); }; bytes = 2 * n * fb; break;
    case kSoftmax: fn = [&] { be.softmax(y, x, false); }; bytes = 2 * n * fb; break;
    case kLogSoftmax: fn = [&] { be.softmax(y, x, true); }; bytes = 2 * n * fb; break;
    case kLayerNorm: fn = [&] { be.layer_norm(y, mean, rstd, x, w, b, 1e-5f, false); }; bytes = 2 * n * fb; break;
    case kRmsNorm: fn = [&] { be.layer_norm(y, mean, rstd, x, w, Tensor(), 1e-6f, true); }; bytes = 2 * n * fb; break;
    case kCrossEntropy:  // forward: the logits read once
      fn = [&] { be.cross_entropy(loss, lse, x, target, -100, 0.f); }; bytes = n * fb; break;
    case kAdamW:  // p, g, m, v read; p, m, v written
      fn = [&] { be.adamw_step(y, x, m, v, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.5f, 0.5f); }; bytes = 7 * n * fb; break;
  }
  run_timed(state, fn);
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

#define SN_BANDWIDTH(name, op) \
  BENCHMARK_CAPTURE(bandwidth_bench, name, op)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1)
SN_BANDWIDTH(copy, kCopy);
SN_BANDWIDTH(relu, kRelu);
SN_BANDWIDTH(add, kAdd);
SN_BANDWIDTH(relu_window, kReluWindow);
SN_BANDWIDTH(softmax, kSoftmax);
SN_BANDWIDTH(log_softmax, kLogSoftmax);
SN_BANDWIDTH(layer_norm, kLayerNorm);
SN_BANDWIDTH(rms_norm, kRmsNorm);
SN_BANDWIDTH(cross_entropy, kCrossEntropy);
SN_BANDWIDTH(adamw, kAdamW);

}  // namespace

BENCHMARK_MAIN();
