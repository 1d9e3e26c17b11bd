// tests/test_cuda_runtime.cpp — the CUDA runtime around the kernels (label `cuda`): pinned
// staging of host -> device copies, streams, events. Skipped with a visible message without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "core/allocator.h"
#include "kernels/cuda/cublas_loader.h"
#include "kernels/cuda/cuda_backend.h"
#include "test_util.h"
#include "train/data.h"

namespace sn {
namespace {

// cuBLAS is not linked but opened on first use (kernels/cuda/cublas_loader.h): no process maps it
// before then, and opening it finds every entry point. Runs without a GPU too.
TEST(CudaLibraries, CublasIsOpenedOnFirstUse) {
  auto mapped = [] {
    std::ifstream maps("/proc/self/maps");
    for (std::string line; std::getline(maps, line);)
      if (line.find("libcublas") != std::string::npos) return true;
    return false;
  };
  if (!cuda::cublas_loaded()) {
    EXPECT_FALSE(mapped()) << "cuBLAS was mapped before its first use";
  }
  const cuda::CublasApi& api = cuda::cublas_api();
  EXPECT_TRUE(api.create && api.set_stream && api.gemm_ex && api.gemm_strided_batched_ex);
  EXPECT_TRUE(cuda::cublas_loaded());
  EXPECT_TRUE(mapped());
}

// The recipe's train.precision, with SN_CUDA_TF32 / SN_CUDA_BF16 over it where set (a training or
// evaluation command applies both). Flags only: runs without a GPU too.
TEST(CudaLibraries, EnvironmentOverridesTheRecipesPrecision) {
  const MatmulPrecision before = matmul_precision();
  std::vector<std::pair<std::string, std::string>> kept;  // the caller's settings, put back at the end
  for (const char* name : {"SN_CUDA_TF32", "SN_CUDA_BF16"})
    if (const char* v = std::getenv(name)) kept.emplace_back(name, v), ::unsetenv(name);
  apply_matmul_precision("tf32");
  EXPECT_EQ(matmul_precision(), MatmulPrecision::tf32);
  ::setenv("SN_CUDA_TF32", "0", 1);
  apply_matmul_precision("tf32");
  EXPECT_EQ(matmul_precision(), MatmulPrecision::fp32);
  ::unsetenv("SN_CUDA_TF32");
  ::setenv("SN_CUDA_BF16", "1", 1);
  apply_matmul_precision("fp32");
  EXPECT_EQ(matmul_precision(), MatmulPrecision::bf16);
  ::unsetenv("SN_CUDA_BF16");
  apply_matmul_precision("bf16");
  EXPECT_EQ(matmul_precision(), MatmulPrecision::bf16);
  set_matmul_precision(before);
  for (const auto& [name, value] : kept) ::setenv(name.c_str(), value.c_str(), 1);
}

class CudaRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device present: CUDA test skipped";
    cuda_backend();  // registers the device and pinned host allocators
  }
};

// Tens of milliseconds of queued GPU work, so that copies queued after it are still pending
// while the host goes on (TF32 off: full fp32 GEMMs).
Tensor keep_gpu_busy() {
  const bool tf32 = cuda_tf32();
  set_cuda_tf32(false);
  Tensor a = full({4096, 4096}, 1e-4f, DType::f32, Device::cuda());
  Tensor c = a;
  for (int i = 0; i < 4; ++i) c = matmul(c, a);
  set_cuda_tf32(tf32);
  return c;
}

// Elements of t (copied back) that differ from `value`.
int64_t mismatches(const Tensor& t, float value) {
  int64_t n = 0;
  for (float v : to_vector<float>(t)) n += v != value;
  return n;
}

TEST_F(CudaRuntime, PinnedStagingIsNeverOverwrittenBeforeItsCopyRuns) {
  ASSERT_NE(pinned_host_allocator(), nullptr);
  constexpr int kCopies = 48;
  const Shape shape{1 << 16};
  {  // warm both caches, so that the loop below makes no allocation call that waits for the GPU
    std::vector<Tensor> warm;
    for (int i = 0; i < kCopies; ++i) {
      warm.push_back(empty_pinned(shape));
      warm.push_back(empty(shape, DType::f32, Device::cuda()));
    }
  }
  cuda_backend().synchronize();
  Tensor busy = keep_gpu_busy();
  CudaEvent busy_done;
  busy_done.record();
  std::vector<Tensor> on_gpu;
  std::vector<const void*> blocks;
  for (int i = 0; i < kCopies; ++i) {
    Tensor host = empty_pinned(shape);
    ASSERT_TRUE(host.is_pinned());
    blocks.push_back(host.data_ptr());
    host.fill_(float(i));  // a block reused too early would carry a later copy's value
    on_gpu.push_back(host.to(Device::cuda(), /*non_blocking=*/true));
  }  // every host tensor is freed while its copy may still be queued
  if (!busy_done.query()) {  // no copy can have run yet: no block may have been handed out twice
    std::sort(blocks.begin(), blocks.end());
    EXPECT_EQ(std::adjacent_find(blocks.begin(), blocks.end()), blocks.end()) << "a pinned block was reused early";
  } else {
    std::printf("note: the GPU finished its queued work before the loop ended; block reuse not observed\n");
  }
  for (int i = 0; i < kCopies; ++i) EXPECT_EQ(mismatches(on_gpu[size_t(i)], float(i)), 0) << "copy " << i;
  // Once the copies are done, the blocks are handed out again.
  cuda_backend().synchronize();
  const uint64_t system_allocs = pinned_host_allocator()->stats().system_allocs;
  Tensor again = empty_pinned(shape);
  EXPECT_EQ(pinned_host_allocator()->stats().system_allocs, system_allocs);
}

TEST_F(CudaRuntime, NonBlockingFallsBackToAWaitingCopyWhereItMust) {
  Tensor x = testing::random_tensor({12, 9}, 7);
  // Ordinary memory, a non-contiguous pinned view and the way back all stay correct.
  EXPECT_EQ(to_vector<float>(x.to(Device::cuda(), true)), to_vector<float>(x));
  Tensor pinned = x.pin_memory();
  EXPECT_TRUE(pinned.is_pinned());
  EXPECT_TRUE(pinned.pin_memory().same(pinned));
  EXPECT_EQ(to_vector<float>(pinned.t().to(Device::cuda(), true)), to_vector<float>(x.t().contiguous()));
  Tensor back = pinned.to(Device::cuda(), true).to(Device::cpu(), true);
  EXPECT_EQ(to_vector<float>(back), to_vector<float>(x));
  Tensor labels = from_vector(std::vector<int64_t>{3, 1, 4}, {3}).pin_memory();
  EXPECT_EQ(to_vector<int64_t>(labels.to(Device::cuda(), true)), (std::vector<int64_t>{3, 1, 4}));
}

TEST_F(CudaRuntime, WorkUnderAStreamGuardRunsOnThatStreamAndStaysOrdered) {
  const bool tf32 = cuda_tf32();
  set_cuda_tf32(false);  // cuBLAS may pick another algorithm per stream: compare at fp32 precision
  Tensor x = testing::random_tensor({256, 128}, 8);
  Tensor w = testing::random_tensor({64, 128}, 9);
  const std::vector<float> expected = to_vector<float>(linear(x, w));
  const cudaStream_t before = current_stream();
  CudaStream side;
  Tensor y;
  {
    Tensor xg = x.to(Device::cuda());  // queued on the stream the guard replaces
    CudaStreamGuard guard(side.get());
    EXPECT_EQ(current_stream(), side.get());
    y = relu(linear(xg, w.to(Device::cuda()))) - relu(-linear(xg, w.to(Device::cuda())));
  }
  EXPECT_EQ(current_stream(), before);
  const std::vector<float> got = to_vector<float>(y);  // read on the first stream, after the scope's work
  set_cuda_tf32(tf32);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-4f * (1.f + std::abs(expected[i])));
}

TEST_F(CudaRuntime, EventsOrderStreamsAndTimeWork) {
  CudaStream side;
  CudaEvent start(/*timing=*/true), stop(/*timing=*/true);
  start.record();
  Tensor busy = keep_gpu_busy();
  stop.record();
  stop.synchronize();
  EXPECT_TRUE(stop.query());
  EXPECT_GT(stop.elapsed_ms(start), 0.f);
  // The side stream waits for the main stream's result before reading it.
  CudaEvent ready;
  ready.record();
  Tensor sum_on_side;
  {
    CudaStreamGuard guard(side.get());
    ready.block(side.get());
    sum_on_side = sum(busy);
  }
  side.synchronize();
  EXPECT_NEAR(sum_on_side.item(), sum(busy).item(), 1e-3 * std::abs(sum(busy).item()) + 1e-6);
}

TEST_F(CudaRuntime, PinnedLoaderBatchesReachTheGpuUnchanged) {
  Dataset d;
  d.images = testing::random_tensor({64, 1, 8, 8}, 10);
  std::vector<int64_t> labels(64);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = int64_t(i % 10);
  d.labels = from_vector(labels, {64});
  BatchLoader plain(d, 16, true, Augment{2, true}, 3), staged(d, 16, true, Augment{2, true}, 3);
  staged.set_pinned(true);
  staged.seek(0, 0);
  plain.seek(0, 0);
  Tensor busy = keep_gpu_busy();
  std::vector<Tensor> images, targets;
  std::vector<Batch> expected;
  for (int i = 0; i < 8; ++i) {
    Batch b = staged.next();
    EXPECT_TRUE(b.images.is_pinned() && b.labels.is_pinned());
    images.push_back(b.images.to(Device::cuda(), true));
    targets.push_back(b.labels.to(Device::cuda(), true));
    expected.push_back(plain.next());
  }
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(to_vector<float>(images[i]), to_vector<float>(expected[i].images)) << "batch " << i;
    EXPECT_EQ(to_vector<int64_t>(targets[i]), to_vector<int64_t>(expected[i].labels)) << "batch " << i;
  }
  (void)busy;
}

}  // namespace
}  // namespace sn
