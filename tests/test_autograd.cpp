// tests/test_autograd.cpp — the backward engine: gradients of views land in the base's window,
// nothing parameter-sized is copied, version counters, retain_graph, no_grad, accumulation.
#include <gtest/gtest.h>

#include "core/allocator.h"
#include "core/grad_mode.h"
#include "test_util.h"

namespace sn {
namespace {

using testing::leaf;
using testing::random_tensor;

TEST(Autograd, NestedWindowGemmCopiesNoParameterMemoryAndWritesOnlyTheWindow) {
  const int64_t O = 64, I = 48, k = 24, m = 16, B = 8;  // B*k and B*m < k*m
  Tensor W = leaf(random_tensor({O, I}, 1));
  Tensor x = leaf(random_tensor({B, m}, 2));
  auto window = [&] { return W.narrow(0, 0, k).narrow(1, 0, m); };
  sum(linear(x, window())).backward();  // creates W's gradient buffer once
  Tensor grad = W.grad();
  ASSERT_TRUE(grad.defined());
  ASSERT_EQ(grad.sizes(), (Shape{O, I}));
  const void* grad_memory = grad.storage()->data();
  {
    NoGradGuard g;
    grad.fill_(7.f);  // a sentinel: untouched elements must keep it
  }
  std::vector<size_t> sizes;
  {
    AllocationObserver watch([&](size_t n) { sizes.push_back(n); });
    Tensor y = linear(x, window());
    sum(y).backward();
  }
  ASSERT_FALSE(sizes.empty());
  for (size_t n : sizes) EXPECT_LT(n, size_t(k * m * 4)) << "an allocation as large as the weight window";
  EXPECT_EQ(W.grad().storage()->data(), grad_memory);  // accumulated in place, same buffer
  std::vector<float> g = to_vector<float>(W.grad()), xv = to_vector<float>(x);
  for (int64_t o = 0; o < O; ++o)
    for (int64_t i = 0; i < I; ++i) {
      float expected = 7.f;
      if (o < k && i < m)
        for (int64_t b = 0; b < B; ++b) expected += xv[size_t(b * m + i)];  // d sum(y)/dW = sum_b x
      ASSERT_NEAR(g[size_t(o * I + i)], expected, 1e-4f) << o << "," << i;
    }
  // The view's gradient is that same window of the parameter's gradient.
  Tensor wg = window().grad();
  EXPECT_EQ(wg.storage(), W.grad().storage());
  EXPECT_EQ(wg.strides(), (Shape{I, 1}));
}

TEST(Autograd, ConvFilterWindowGradientInPlace) {
  Tensor Wt = leaf(random_tensor({8, 6, 3, 3}, 3));
  Tensor x = random_tensor({2, 4, 5, 5}, 4);
  auto run = [&] { sum(conv2d(x, Wt.prefix({5, 4}), Tensor(), {1, 1, 1, 1, 1, 1, 1})).backward(); };
  run();
  const void* mem = Wt.grad().storage()->data();
  std::vector<size_t> sizes;
  {
    AllocationObserver watch([&](size_t n) { sizes.push_back(n); });
    run();
  }
  for (size_t n : sizes) EXPECT_NE(n, size_t(8 * 6 * 9 * 4)) << "a parameter-sized buffer";
  EXPECT_EQ(Wt.grad().storage()->data(), mem);
  std::vector<float> g = to_vector<float>(Wt.grad());
  for (int64_t o = 0; o < 8; ++o)
    for (int64_t i = 0; i < 6; ++i)
      if (o >= 5 || i >= 4) {
        for (int j = 0; j < 9; ++j) ASSERT_EQ(g[size_t((o * 6 + i) * 9 + j)], 0.f);
      }
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor w = leaf(from_vector(std::vector<float>{1, 2, 3}, {3}));
  sum(w * 2.f).backward();
  sum(w * 3.f).backward();
  EXPECT_EQ(to_vector<float>(w.grad()), (std::vector<float>{5, 5, 5}));
  w.zero_grad();
  EXPECT_EQ(to_vector<float>(w.grad()), (std::vector<float>{0, 0, 0}));
}

TEST(Autograd, SubModelsAccumulateIntoSharedParameters) {
  // Two nested sub-models of one weight: the gradient is the sum of both, windows overlap.
  Tensor W = leaf(random_tensor({6, 5}, 5));
  Tensor x = random_tensor({3, 5}, 6);
  sum(linear(x.narrow(1, 0, 2), W.prefix({3, 2}))).backward();
  std::vector<float> small = to_vector<float>(W.grad());
  W.zero_grad();
  sum(linear(x, W)).backward();
  std::vector<float> big = to_vector<float>(W.grad());
  W.zero_grad();
  sum(linear(x.narrow(1, 0, 2), W.prefix({3, 2}))).backward();
  sum(linear(x, W)).backward();
  std::vector<float> both = to_vector<float>(W.grad());
  for (size_t i = 0; i < both.size(); ++i) EXPECT_NEAR(both[i], small[i] + big[i], 1e-5f);
}

TEST(Autograd, InPlaceChangeOfASavedTensorIsReported) {
  Tensor w = leaf(random_tensor({4}, 7));
  Tensor x = leaf(random_tensor({4}, 8));
  Tensor y = sum(w * x);
  {
    NoGradGuard g;
    w.fill_(1.f);  // an optimizer step between forward and backward
  }
  try {
    y.backward();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("modified in place"), std::string::npos) << e.what();
  }
}

TEST(Autograd, RetainGraph) {
  Tensor w = leaf(random_tensor({3}, 9));
  Tensor y = sum(exp(w));
  y.backward(Tensor(), true);
  y.backward();
  std::vector<float> g = to_vector<float>(w.grad()), e = to_vector<float>(exp(w));
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], 2 * e[i], 1e-5f);
  EXPECT_THROW(y.backward(), Error);  // saved tensors were freed
}

TEST(Autograd, NoGradRecordsNothing) {
  Tensor w = leaf(random_tensor({3}, 10));
  {
    NoGradGuard g;
    Tensor y = w * 2.f;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_FALSE(w.narrow(0, 0, 2).requires_grad());
  }
  EXPECT_TRUE((w * 2.f).requires_grad());
  EXPECT_TRUE(w.narrow(0, 0, 2).requires_grad());
}

TEST(Autograd, MisuseIsAClearError) {
  Tensor w = leaf(random_tensor({3}, 11));
  EXPECT_THROW(w.fill_(0.f), Error);              // in-place on a parameter while recording
  EXPECT_THROW((w * 2.f).set_requires_grad(false), Error);  // not a leaf
  EXPECT_THROW((w * 2.f).backward(), Error);      // non-scalar without a gradient
  EXPECT_THROW(random_tensor({2}, 1).backward(), Error);  // nothing requires grad
  EXPECT_THROW(arange(3).set_requires_grad(true), Error);  // integer tensor
}

TEST(Autograd, RetainGradAndGradientSeed) {
  Tensor w = leaf(random_tensor({3}, 12));
  Tensor h = w * 3.f;
  h.retain_grad();
  Tensor y = h * h;
  y.backward(ones({3}));
  std::vector<float> hg = to_vector<float>(h.grad()), hv = to_vector<float>(h);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(hg[i], 2 * hv[i], 1e-5f);
}

// A retained gradient reads back in the tensor's own layout, also when the op's output is a
// transposed view (softmax over dim 0 computes along the last dim of a transpose).
// A sum's gradient arrives as a broadcast (stride-0) view; the row kernels behind LayerNorm,
// embedding and softmax take it (they need unit inner strides, which the engine's gradient
// buffers give them).
TEST(Autograd, RowKernelsTakeTheGradientOfASum) {
  Tensor x = leaf(random_tensor({4, 6}, 90)), w = leaf(random_tensor({10, 6}, 91));
  sum(layer_norm(x, Tensor(), Tensor(), 1e-5f)).backward();  // the rows' sums are 0 whatever x
  for (float v : to_vector<float>(x.grad())) EXPECT_NEAR(v, 0.f, 1e-5f);
  sum(embedding(from_vector(std::vector<int64_t>{1, 2, 2}, {3}), w)).backward();
  const std::vector<float> dw = to_vector<float>(w.grad());
  for (int64_t r = 0; r < 10; ++r)
    for (int64_t k = 0; k < 6; ++k) EXPECT_EQ(dw[size_t(r * 6 + k)], r == 1 ? 1.f : r == 2 ? 2.f : 0.f);
  Tensor z = leaf(random_tensor({4, 6}, 92));
  sum(softmax(z, 1)).backward();  // every row sums to 1
  for (float v : to_vector<float>(z.grad())) EXPECT_NEAR(v, 0.f, 1e-6f);
}

TEST(Autograd, RetainedGradientOfANonContiguousOutput) {
  Tensor x = leaf(random_tensor({2, 3}, 18));
  Tensor h = softmax(x, 0);
  ASSERT_FALSE(h.is_contiguous());
  h.retain_grad();
  Tensor c = random_tensor({2, 3}, 19);
  sum(h * c).backward();
  EXPECT_EQ(to_vector<float>(h.grad().contiguous()), to_vector<float>(c));
}

TEST(Autograd, FirstGradientsDoNotAlias) {
  Tensor a = leaf(random_tensor({3}, 13)), b = leaf(random_tensor({3}, 14));
  sum(a + b).backward();
  {
    NoGradGuard g;
    a.grad().fill_(5.f);
  }
  EXPECT_EQ(to_vector<float>(b.grad()), (std::vector<float>{1, 1, 1}));
}

TEST(Autograd, BitIdenticalAcrossRuns) {
  auto run = [] {
    Tensor W = leaf(random_tensor({32, 20}, 15));
    Tensor x = random_tensor({16, 20}, 16);
    Tensor t = from_vector(std::vector<int64_t>(16, 3), {16});
    cross_entropy(linear(relu(linear(x, W)), random_tensor({10, 32}, 17)), t).backward();
    return to_vector<float>(W.grad());
  };
  EXPECT_EQ(run(), run());
}

}  // namespace
}  // namespace sn

namespace sn {
namespace {

// Regressions found in review: each of these once gave a wrong result or crashed.
TEST(AutogradEdgeCases, RetainedGradientIsNotCountedTwice) {
  Tensor x = leaf(from_vector(std::vector<float>{1, 2}, {2}));
  Tensor h = x * 2.f;
  h.retain_grad();
  Tensor z = sum(h);
  z.backward(Tensor(), true);
  z.backward();
  EXPECT_EQ(to_vector<float>(x.grad()), (std::vector<float>{4, 4}));
  EXPECT_EQ(to_vector<float>(h.grad()), (std::vector<float>{2, 2}));
}

TEST(AutogradEdgeCases, GradientsReachWindowsBlasCannotWrite) {
  // Every other column: a window no GEMM can write; backward goes through a temporary.
  Tensor W = leaf(random_tensor({4, 8}, 21)), B = leaf(random_tensor({4, 3}, 22));
  testing::expect_gradcheck([](const std::vector<Tensor>& in) { return matmul(in[0].slice(1, 0, 8, 2).t(), in[1]); },
                            {W, B});
  testing::expect_gradcheck([](const std::vector<Tensor>& in) { return linear(in[1].t(), in[0].slice(1, 0, 8, 2)); },
                            {W, B});
  // The centre tap of a 3×3 filter: its kernel block is not contiguous.
  Tensor F = leaf(random_tensor({3, 2, 3, 3}, 23));
  testing::expect_gradcheck([](const std::vector<Tensor>& in) {
    return conv2d(in[1], in[0].narrow(2, 1, 1).narrow(3, 1, 1));
  }, {F, leaf(random_tensor({1, 2, 4, 4}, 24))});
}

TEST(AutogradEdgeCases, ModifiedEmbeddingIndicesAreReported) {
  Tensor W = leaf(random_tensor({5, 3}, 25));
  Tensor idx = from_vector(std::vector<int64_t>{1, 2}, {2});
  Tensor y = embedding(idx, W);
  idx.fill_(1e6f);
  EXPECT_THROW(sum(y).backward(), Error);
}

TEST(AutogradEdgeCases, BadShapesAreErrorsNotCrashes) {
  Tensor s = sum(random_tensor({3}, 26));  // 0-d
  EXPECT_THROW(s.size(0), Error);
  EXPECT_THROW(s.select(0, 0), Error);
  EXPECT_THROW(sum(s, {0}), Error);
  EXPECT_THROW(cat({s, s}, 0), Error);
  EXPECT_THROW(mean(random_tensor({2, 3}, 27), {1, -1}), Error);  // a dim twice
  EXPECT_THROW(conv2d(random_tensor({1, 1, 2, 2}, 28), random_tensor({1, 1, 3, 3}, 29), Tensor(),
                      {2, 2, 0, 0, 1, 1, 1}), Error);
  EXPECT_THROW(max_pool2d(random_tensor({1, 1, 1, 1}, 30), {4, 4, 1, 1, 1, 1}), Error);
  EXPECT_THROW(random_tensor({4}, 31).as_strided({3}, {int64_t(1) << 62}, 0), Error);
  EXPECT_THROW(empty({int64_t(1) << 40, int64_t(1) << 40}), Error);
  // A parameter that is itself a window of larger memory: a view may not reach outside it.
  Tensor window = random_tensor({4, 4}, 32).narrow(0, 0, 2);
  window.set_requires_grad(true);
  EXPECT_THROW(window.as_strided({3, 4}, {4, 1}, 0), Error);
  EXPECT_NO_THROW(window.as_strided({2, 2}, {4, 1}, 1));
}

TEST(AutogradEdgeCases, EmptyInnerDimensionGivesZeros) {
  Tensor a = full({2, 0}, 1.f), b = full({0, 3}, 1.f);
  EXPECT_EQ(to_vector<float>(matmul(a, b)), std::vector<float>(6, 0.f));
}

TEST(AutogradEdgeCases, OverlappingCopyShiftsCorrectly) {
  Tensor t = from_vector(std::vector<float>{0, 1, 2, 3}, {4});
  t.narrow(0, 1, 3).copy_(t.narrow(0, 0, 3));
  EXPECT_EQ(to_vector<float>(t), (std::vector<float>{0, 0, 1, 2}));
}

}  // namespace
}  // namespace sn
