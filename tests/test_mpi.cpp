// tests/test_mpi.cpp — the MPI communicator (label `mpi`; run under mpirun -np 2).
#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "train/comm.h"

using namespace sn;

namespace {

Communicator& comm() {
  static std::unique_ptr<Communicator> c = make_mpi_communicator(60.0);
  return *c;
}

}  // namespace

TEST(Mpi, AllReduceOfWindowsTouchesOnlyTheWindows) {
  Communicator& c = comm();
  ASSERT_GE(c.size(), 2) << "run under mpirun -np 2";
  const float r = float(c.rank() + 1);
  // A [6, 5] gradient and a [4] one, each rank holding different values.
  Tensor a = full({6, 5}, 0.f), b = full({4}, 0.f);
  for (int64_t i = 0; i < 30; ++i) a.data<float>()[i] = r * float(i + 1);
  for (int64_t i = 0; i < 4; ++i) b.data<float>()[i] = r * 100.f;
  c.reset_stats();
  all_reduce_windows(c, {a, b}, {{3, 4}, {2}}, 1.f / float(c.size()));
  EXPECT_EQ(c.stats().bytes_reduced, (3 * 4 + 2) * 4);  // only the windows travel
  const float mean_r = float(c.size() + 1) / 2.f;       // mean of 1..size
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 5; ++j) {
      const float v = a.data<float>()[i * 5 + j], own = r * float(i * 5 + j + 1);
      if (i < 3 && j < 4) EXPECT_FLOAT_EQ(v, mean_r * float(i * 5 + j + 1)) << i << "," << j;
      else EXPECT_EQ(v, own) << "outside the window " << i << "," << j;
    }
  EXPECT_FLOAT_EQ(b.data<float>()[1], mean_r * 100.f);
  EXPECT_EQ(b.data<float>()[2], r * 100.f);
}

TEST(Mpi, WindowsOfAStridedViewAndAnEmptyWindow) {
  Communicator& c = comm();
  Tensor big = full({4, 8}, float(c.rank()));
  Tensor view = big.narrow(1, 2, 5);  // row stride 8
  all_reduce_windows(c, {view, Tensor(), big}, {{2, 3}, {}, {0, 0}}, 1.f);
  float expected = 0;
  for (int k = 0; k < c.size(); ++k) expected += float(k);
  EXPECT_EQ(big.data<float>()[0 * 8 + 2], expected);
  EXPECT_EQ(big.data<float>()[1 * 8 + 4], expected);
  EXPECT_EQ(big.data<float>()[1 * 8 + 5], float(c.rank()));  // column 3 of the view: outside
  EXPECT_EQ(big.data<float>()[2 * 8 + 2], float(c.rank()));  // row 2: outside
}

TEST(Mpi, UnionOfWindowsIsTheElementwiseMaximum) {
  Communicator& c = comm();
  std::vector<Shape> windows = c.rank() == 0 ? std::vector<Shape>{{2, 5}, {1}} : std::vector<Shape>{{4, 3}, {0}};
  union_windows(c, windows);
  EXPECT_EQ(windows[0], (Shape{4, 5}));
  EXPECT_EQ(windows[1], (Shape{1}));
}

TEST(Mpi, BroadcastFromRankZero) {
  Communicator& c = comm();
  int64_t value = c.rank() == 0 ? 42 : -1;
  c.broadcast(&value, sizeof(value), 0);
  EXPECT_EQ(value, 42);
  c.barrier();
}

#ifdef SN_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"

// GPU gradients under the MPI communicator: packed on the device, staged through host memory.
TEST(Mpi, GpuWindowsAreReducedThroughHostMemory) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device present: GPU part skipped";
  Communicator& c = comm();
  const float r = float(c.rank() + 1);
  Tensor a = full({6, 5}, r).to(Device::cuda());
  all_reduce_windows(c, {a}, {{3, 4}}, 1.f / float(c.size()));
  std::vector<float> v = to_vector<float>(a.to(Device::cpu()));
  EXPECT_FLOAT_EQ(v[0], float(c.size() + 1) / 2.f);  // the mean of 1..size inside the window
  EXPECT_EQ(v[4], r);                                // column 4: outside
}
#endif
