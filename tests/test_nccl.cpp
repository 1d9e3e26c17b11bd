// tests/test_nccl.cpp — the NCCL communicator on one GPU, one rank (label `cuda`; skipped with a
// visible message where no GPU is present): windows of GPU gradients packed, reduced by NCCL
// and unpacked give what the CPU path gives on the same values; only the windows travel;
// tensor broadcasts and reductions leave a single rank's data as it was.
#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "kernels/cuda/cuda_backend.h"
#include "test_util.h"
#include "train/comm.h"

namespace sn {
namespace {

using testing::random_tensor;

class Nccl : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device present: NCCL test skipped";
  }
};

TEST_F(Nccl, WindowsReducedOnTheGpuMatchTheCpuPath) {
  std::unique_ptr<Communicator> nccl = make_nccl_communicator(60.0), local = make_local_communicator();
  ASSERT_EQ(nccl->size(), 1);
  EXPECT_NE(nccl->backend().find("nccl"), std::string::npos);
  // A [6, 5] gradient, a strided [4, 8] -> [4, 5] view and a [7] one; windows inside each.
  Tensor a = random_tensor({6, 5}, 1), big = random_tensor({4, 8}, 2), c = random_tensor({7}, 3);
  Tensor ga = a.to(Device::cuda()), gbig = big.to(Device::cuda()), gc = c.to(Device::cuda());
  const std::vector<Shape> windows{{3, 4}, {2, 3}, {5}};
  all_reduce_windows(*local, {a, big.narrow(1, 2, 5), c}, windows, 0.5f);
  nccl->reset_stats();
  all_reduce_windows(*nccl, {ga, gbig.narrow(1, 2, 5), gc}, windows, 0.5f);
  EXPECT_EQ(nccl->stats().bytes_reduced, (12 + 6 + 5) * 4);  // only the windows travel
  EXPECT_EQ(to_vector<float>(ga.to(Device::cpu())), to_vector<float>(a));
  EXPECT_EQ(to_vector<float>(gbig.to(Device::cpu())), to_vector<float>(big));
  EXPECT_EQ(to_vector<float>(gc.to(Device::cpu())), to_vector<float>(c));
}

TEST_F(Nccl, TensorCollectivesOnTheDevice) {
  std::unique_ptr<Communicator> nccl = make_nccl_communicator(60.0);
  Tensor x = random_tensor({3 << 20}, 4);  // 12 MB: several NCCL chunks
  Tensor gx = x.to(Device::cuda());
  nccl->all_reduce_sum_tensor(gx);
  EXPECT_EQ(to_vector<float>(gx.to(Device::cpu())), to_vector<float>(x));  // one rank: the sum is itself
  Tensor labels = from_vector(std::vector<int64_t>{4, 8, 15, 16}, {4}).to(Device::cuda());
  nccl->broadcast_tensor(labels, 0);
  EXPECT_EQ(to_vector<int64_t>(labels.to(Device::cpu())), (std::vector<int64_t>{4, 8, 15, 16}));
  float host[2] = {1.f, 2.f};
  nccl->all_reduce_sum(host, 2);  // host data: the host communicator
  EXPECT_EQ(host[1], 2.f);
  nccl->finish();  // finalised and destroyed within the deadline, as a training run ends
  nccl->finish();  // once only
}

}  // namespace
}  // namespace sn
