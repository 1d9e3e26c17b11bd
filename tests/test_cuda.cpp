// tests/test_cuda.cpp — CUDA kernels against the CPU reference (label `cuda`). Every test skips
// with a visible message where no GPU is present.
#include <gtest/gtest.h>

#include "kernels/cuda/cuda_backend.h"
#include "test_util.h"

namespace sn {
namespace {

using testing::random_tensor;

class Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device present: CUDA test skipped";
  }
};

TEST_F(Cuda, RoundTripAndFill) {
  Tensor x = random_tensor({17, 33}, 1);
  Tensor d = x.to(Device::cuda());
  EXPECT_TRUE(d.device().is_cuda());
  EXPECT_EQ(to_vector<float>(d), to_vector<float>(x));
  Tensor z = full({5, 7}, 2.5f, DType::f32, Device::cuda());
  EXPECT_EQ(to_vector<float>(z), std::vector<float>(35, 2.5f));
}

TEST_F(Cuda, StridedCopyOfANestedWindowMatchesTheCpu) {
  Tensor x = random_tensor({9, 12}, 2);
  Tensor d = x.to(Device::cuda());
  Tensor win_gpu = d.prefix({5, 7}).t().contiguous();
  Tensor win_cpu = x.prefix({5, 7}).t().contiguous();
  EXPECT_EQ(to_vector<float>(win_gpu), to_vector<float>(win_cpu));
}

TEST_F(Cuda, GradientFlowsBackThroughTransfers) {
  Tensor x = testing::leaf(random_tensor({4, 3}, 3));
  Tensor y = x.to(Device::cuda()).to(Device::cpu());
  sum(y * 2.f).backward();
  EXPECT_EQ(to_vector<float>(x.grad()), std::vector<float>(12, 2.f));
}

TEST_F(Cuda, MissingKernelIsAClearError) {
  Tensor d = ones({3}, DType::f32, Device::cuda());
  try {
    relu(d);
    FAIL() << "expected an error until the kernel exists";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sn
