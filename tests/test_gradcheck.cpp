// tests/test_gradcheck.cpp — every differentiable op's backward against finite differences,
// on contiguous leaves and on nested windows of larger parameters (where the parameter's
// gradient must also stay zero outside the window).
#include <gtest/gtest.h>

#include "autograd/node.h"
#include "kernels/cpu/conv_shifted.h"
#include "test_util.h"

namespace sn {
namespace {

using testing::expect_gradcheck;
using testing::leaf;
using testing::random_tensor;
using Inputs = std::vector<Tensor>;

// Random values kept at least `gap` away from 0 (kinks of relu/abs stay out of reach of eps).
Tensor away_from_zero(const Shape& sizes, uint64_t seed, float gap = 0.2f) {
  std::vector<float> v = to_vector<float>(random_tensor(sizes, seed));
  for (auto& x : v) x += x >= 0 ? gap : -gap;
  return from_vector(v, sizes);
}

// Distinct values spaced 0.1 apart in random order: no near-ties for max pooling.
Tensor distinct(const Shape& sizes, uint64_t seed) {
  int64_t n = numel_of(sizes);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = 0.1f * float(i) - 0.05f * float(n);
  Generator g(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(v[size_t(i)], v[g.below(uint64_t(i + 1))]);
  return from_vector(v, sizes);
}

// Runs f on a contiguous leaf of `sizes` and on the same-sized window of a larger parameter.
void check_both(const Shape& sizes, const std::function<Tensor(const Tensor&)>& f,
                const std::function<Tensor(const Shape&, uint64_t)>& make = {}) {
  auto gen = make ? make : [](const Shape& s, uint64_t seed) { return away_from_zero(s, seed); };
  expect_gradcheck([&](const Inputs& in) { return f(in[0]); }, {leaf(gen(sizes, 1))});
  Shape big = sizes;
  for (auto& d : big) d += 2;
  Tensor param = leaf(gen(big, 2));
  expect_gradcheck([&](const Inputs& in) { return f(in[0].prefix(sizes)); }, {param});
}

TEST(Gradcheck, Unary) {
  for (Unary op : {Unary::neg, Unary::exp, Unary::abs, Unary::relu, Unary::gelu, Unary::gelu_tanh,
                   Unary::silu, Unary::tanh, Unary::sigmoid, Unary::square}) {
    SCOPED_TRACE(unary_name(op));
    check_both({3, 4}, [op](const Tensor& x) { return unary(op, x); });
  }
  auto positive = [](const Shape& s, uint64_t seed) { return abs(away_from_zero(s, seed)) + 0.5f; };
  check_both({3, 4}, [](const Tensor& x) { return log(x); }, positive);
  check_both({3, 4}, [](const Tensor& x) { return sqrt(x); }, positive);
  check_both({3, 4}, [](const Tensor& x) { return affine(x, -1.5f, 0.25f); });
}

TEST(Gradcheck, BinaryWithBroadcasting) {
  auto check = [](auto op) {
    expect_gradcheck([&](const Inputs& in) { return op(in[0], in[1]); },
                     {leaf(away_from_zero({3, 4}, 3)), leaf(away_from_zero({4}, 4))});
    Tensor A = leaf(away_from_zero({5, 6}, 5)), B = leaf(away_from_zero({2, 6}, 6));
    expect_gradcheck([&](const Inputs& in) { return op(in[0].prefix({3, 4}), in[1].prefix({1, 4})); }, {A, B});
  };
  check([](const Tensor& a, const Tensor& b) { return a + b; });
  check([](const Tensor& a, const Tensor& b) { return a - b; });
  check([](const Tensor& a, const Tensor& b) { return a * b; });
  check([](const Tensor& a, const Tensor& b) { return a / b; });
  // The same tensor used twice accumulates both contributions.
  expect_gradcheck([](const Inputs& in) { return in[0] * in[0] + in[0]; }, {leaf(random_tensor({5}, 7))});
}

TEST(Gradcheck, Reductions) {
  check_both({3, 4, 2}, [](const Tensor& x) { return sum(x); });
  check_both({3, 4, 2}, [](const Tensor& x) { return sum(x, {0, 2}); });
  check_both({3, 4, 2}, [](const Tensor& x) { return mean(x, {1}, true); });
  check_both({3, 4, 2}, [](const Tensor& x) { return mean(x); });
  check_both({3, 4, 2}, [](const Tensor& x) { return sum_to(x, {4, 1}); });
}

TEST(Gradcheck, ViewsAndCopies) {
  check_both({3, 4}, [](const Tensor& x) { return x.t().narrow(0, 1, 2) * 2.f; });
  check_both({3, 4}, [](const Tensor& x) { return x.select(1, 2) + x.select(1, 0); });
  check_both({3, 4}, [](const Tensor& x) { return x.unsqueeze(0).expand({2, 3, 4}) * x; });
  check_both({3, 4}, [](const Tensor& x) { return x.reshape({12}).slice(0, 1, 12, 3); });
  check_both({2, 3, 4}, [](const Tensor& x) { return x.permute({2, 0, 1}).contiguous(); });
  check_both({3, 4}, [](const Tensor& x) { return cat({x, x.narrow(1, 0, 2) * 3.f}, 1); });
  check_both({3, 4}, [](const Tensor& x) { return x.clone().flatten(); });
}

TEST(Gradcheck, MatmulAndLinear) {
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {leaf(random_tensor({3, 4}, 8)), leaf(random_tensor({4, 2}, 9))});
  Tensor A = leaf(random_tensor({5, 6}, 10)), B = leaf(random_tensor({7, 4}, 11));
  expect_gradcheck([](const Inputs& in) { return matmul(in[0].prefix({3, 4}), in[1].prefix({4, 2})); }, {A, B});
  expect_gradcheck([](const Inputs& in) { return matmul(in[0].prefix({3, 4}), in[1].prefix({2, 4}).t()); }, {A, B});
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); },
                   {leaf(random_tensor({2, 3, 4}, 12)), leaf(random_tensor({2, 4, 2}, 13))});
  // The scale inside the GEMM (attention's 1/sqrt(dh)): both gradients carry it.
  expect_gradcheck([](const Inputs& in) { return matmul(in[0], in[1].transpose(1, 2), 0.35f); },
                   {leaf(random_tensor({2, 3, 4}, 12)), leaf(random_tensor({2, 5, 4}, 13))});
  // linear on windows of a wider weight and bias: the SortedNet case.
  Tensor x = leaf(random_tensor({2, 3, 4}, 14));
  Tensor W = leaf(random_tensor({7, 6}, 15)), b = leaf(random_tensor({7}, 16));
  expect_gradcheck([](const Inputs& in) {
    return linear(in[0], in[1].prefix({5, 4}), in[2].narrow(0, 0, 5));
  }, {x, W, b});
  expect_gradcheck([](const Inputs& in) { return linear(in[0], in[1]); },
                   {leaf(random_tensor({3, 4}, 17)), leaf(random_tensor({2, 4}, 18))});
}

TEST(Gradcheck, SoftmaxAndCrossEntropy) {
  check_both({3, 5}, [](const Tensor& x) { return softmax(x); });
  check_both({3, 5}, [](const Tensor& x) { return log_softmax(x); });
  check_both({3, 5}, [](const Tensor& x) { return softmax(x, 0); });
  Tensor t = from_vector(std::vector<int64_t>{1, 4, -100, 0}, {4});
  check_both({4, 5}, [t](const Tensor& x) { return cross_entropy(x, t); });
  check_both({4, 5}, [t](const Tensor& x) { return cross_entropy(x, t, Reduction::sum, -100, 0.2f); });
  check_both({4, 5}, [t](const Tensor& x) { return cross_entropy(x, t, Reduction::none); });
}

TEST(Gradcheck, NormsOnPrefixWindows) {
  Tensor x = leaf(random_tensor({3, 5}, 20));
  Tensor W = leaf(random_tensor({8}, 21)), B = leaf(random_tensor({8}, 22));
  expect_gradcheck([](const Inputs& in) {
    return layer_norm(in[0], in[1].narrow(0, 0, 5), in[2].narrow(0, 0, 5));
  }, {x, W, B});
  expect_gradcheck([](const Inputs& in) { return rms_norm(in[0], in[1].narrow(0, 0, 5)); }, {x, W});
  // Input is itself the prefix of a wider activation.
  Tensor X = leaf(random_tensor({3, 8}, 23));
  expect_gradcheck([](const Inputs& in) {
    return layer_norm(in[0].narrow(1, 0, 5), in[1].narrow(0, 0, 5), in[2].narrow(0, 0, 5));
  }, {X, W, B});
  check_both({2, 6}, [](const Tensor& x) { return layer_norm(x, Tensor(), Tensor()); });
}

TEST(Gradcheck, BatchNorm) {
  Tensor W = leaf(random_tensor({6}, 30)), B = leaf(random_tensor({6}, 31));
  Tensor X = leaf(random_tensor({3, 6, 3, 3}, 32));
  for (bool training : {true, false}) {
    SCOPED_TRACE(training ? "train" : "eval");
    Tensor rm = random_tensor({6}, 33) * 0.1f, rv = abs(random_tensor({6}, 34)) + 0.5f;
    expect_gradcheck([&](const Inputs& in) {
      Tensor m = rm.clone(), v = rv.clone();  // each call starts from the same running stats
      return batch_norm(in[0].narrow(1, 0, 4), in[1].narrow(0, 0, 4), in[2].narrow(0, 0, 4),
                        m.narrow(0, 0, 4), v.narrow(0, 0, 4), training);
    }, {X, W, B});
  }
  expect_gradcheck([](const Inputs& in) { return batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), true); },
                   {leaf(random_tensor({5, 3}, 35)), leaf(random_tensor({3}, 36)), leaf(random_tensor({3}, 37))});
}

// [N, C, H, W] values of magnitude 0.8-1.2 · scale whose signs alternate within each channel (the
// same pattern in every channel): normalised, every ReLU input stays far from the kink, where a
// finite difference measures the jump instead of the derivative.
Tensor alternating_planes(const Shape& s, uint64_t seed, float scale) {
  Tensor t = random_tensor(s, seed);
  float* p = t.data<float>();
  const int64_t plane = s[2] * s[3], sample = s[1] * plane;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int64_t k = (i / sample) * plane + i % plane;  // the same index in every channel
    p[i] = (k % 2 ? scale : -scale) * (1.f + 0.2f * std::tanh(p[i]));
  }
  return t;
}

TEST(Gradcheck, BatchNormRelu) {
  Tensor W = leaf(tanh(random_tensor({6}, 40)) * 0.2f + 1.f), B = leaf(tanh(random_tensor({6}, 41)) * 0.1f);
  Tensor X = leaf(alternating_planes({3, 6, 3, 3}, 42, 1.f)), R = leaf(alternating_planes({3, 5, 3, 3}, 43, 0.5f));
  for (bool training : {true, false})
    for (bool residual : {false, true}) {
      SCOPED_TRACE(std::string(training ? "train" : "eval") + (residual ? " residual" : ""));
      Tensor rm = random_tensor({6}, 44) * 0.1f, rv = abs(random_tensor({6}, 45)) + 0.5f;
      expect_gradcheck([&](const Inputs& in) {
        Tensor m = rm.clone(), v = rv.clone();  // each call starts from the same running stats
        return batch_norm_relu(in[0].narrow(1, 0, 4), in[1].narrow(0, 0, 4), in[2].narrow(0, 0, 4), m.narrow(0, 0, 4),
                               v.narrow(0, 0, 4), training, 0.1f, 1e-5f,
                               residual ? in[3].narrow(1, 1, 4) : Tensor());
      }, {X, W, B, R});
    }
}

TEST(Gradcheck, Conv2d) {
  struct Case {
    Shape x, w;
    Conv2dGeometry g;
  };
  // Every CPU algorithm: im2col, and shifted planes with BLAS per tap, the planar direct kernel or
  // the channels-last implicit GEMM (these apply to the ungrouped cases; with a stride, over phase
  // planes).
  for (auto algorithm : {cpu::ConvAlgorithm::im2col, cpu::ConvAlgorithm::shifted, cpu::ConvAlgorithm::direct,
                         cpu::ConvAlgorithm::implicit_gemm})
  for (const Case& c : {Case{{2, 2, 5, 5}, {3, 2, 3, 3}, {1, 1, 1, 1, 1, 1, 1}},
                        Case{{1, 4, 6, 6}, {4, 2, 3, 3}, {2, 2, 1, 1, 1, 1, 2}},
                        Case{{2, 3, 5, 5}, {3, 1, 3, 3}, {1, 1, 1, 1, 1, 1, 3}},
                        Case{{1, 2, 5, 5}, {2, 2, 1, 1}, {2, 2, 0, 0, 1, 1, 1}},
                        Case{{3, 3, 4, 6}, {2, 3, 3, 2}, {1, 1, 2, 0, 1, 1, 1}},
                        // stride 2 over rows of 17 and 16 outputs: the vector gather and scatter
                        // of im2col take 8 per step, with and without a partial last step
                        Case{{2, 2, 5, 33}, {3, 2, 3, 3}, {2, 2, 1, 1, 1, 1, 1}},
                        Case{{2, 3, 3, 32}, {2, 3, 1, 1}, {2, 2, 0, 0, 1, 1, 1}},
                        // a 2×2 filter with stride 3: phases no tap reads, whose gradient is 0
                        Case{{2, 3, 8, 7}, {2, 3, 2, 2}, {3, 3, 1, 1, 1, 1, 1}},
                        // different strides and pads along rows and columns
                        Case{{2, 3, 7, 6}, {4, 3, 3, 3}, {2, 1, 0, 1, 1, 1, 1}},
                        Case{{2, 2, 6, 9}, {3, 2, 3, 2}, {1, 3, 2, 0, 1, 1, 1}}}) {
    SCOPED_TRACE(shape_str(c.w) + " algorithm " + std::to_string(int(algorithm)));
    cpu::set_conv_algorithm(algorithm);
    Conv2dGeometry g = c.g;
    expect_gradcheck([g](const Inputs& in) { return conv2d(in[0], in[1], in[2], g); },
                     {leaf(random_tensor(c.x, 40)), leaf(random_tensor(c.w, 41)), leaf(random_tensor({c.w[0]}, 42))});
    // Windows: the first channels of a wider input, filter and bias.
    Shape X = c.x, Wt = c.w;
    X[1] += 2;
    Wt[0] += 2;
    if (g.groups == 1) Wt[1] += 1;
    Shape xs = c.x, ws = c.w;
    expect_gradcheck([g, xs, ws](const Inputs& in) {
      return conv2d(in[0].narrow(1, 0, xs[1]), in[1].prefix({ws[0], ws[1]}), in[2].narrow(0, 0, ws[0]), g);
    }, {leaf(random_tensor(X, 43)), leaf(random_tensor(Wt, 44)), leaf(random_tensor({Wt[0]}, 45))});
    cpu::set_conv_algorithm(cpu::ConvAlgorithm::automatic);
  }
}

TEST(Gradcheck, Pooling) {
  auto make = [](const Shape& s, uint64_t seed) { return distinct(s, seed); };
  check_both({1, 2, 5, 5}, [](const Tensor& x) { return max_pool2d(x, {3, 3, 2, 2, 1, 1}); }, make);
  check_both({1, 2, 4, 5}, [](const Tensor& x) { return avg_pool2d(x, {2, 2, 2, 2, 0, 0}); });
  check_both({2, 2, 3, 3}, [](const Tensor& x) { return global_avg_pool2d(x); });
}

TEST(Gradcheck, EmbeddingAndDropout) {
  Tensor idx = from_vector(std::vector<int64_t>{2, 0, 2, 4}, {2, 2});
  Tensor W = leaf(random_tensor({7, 6}, 50));
  expect_gradcheck([idx](const Inputs& in) { return embedding(idx, in[0].prefix({5, 4})); }, {W});
  check_both({4, 5}, [](const Tensor& x) {
    Generator g(11);  // the same mask on every call
    return dropout(x, 0.3f, g);
  });
}

}  // namespace
}  // namespace sn

namespace sn {
namespace {

// gradcheck itself must catch a wrong backward formula, including one that writes outside the
// window it was given.
TEST(Gradcheck, DetectsAWrongGradient) {
  auto wrong_square = [](const Tensor& x) {
    Tensor out = square(x.detach());
    autograd::Saved sx(x);
    return autograd::record("wrong_square", out, {&x}, [sx](autograd::BackwardContext& ctx) {
      ctx.accumulate(0, mul(ctx.grad(), sx.get("wrong_square")) * 3.f);  // should be 2x
    });
  };
  GradcheckResult r = gradcheck([&](const Inputs& in) { return wrong_square(in[0]); },
                                {leaf(random_tensor({4}, 1))});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("analytic"), std::string::npos);
  GradcheckResult good = gradcheck([](const Inputs& in) { return square(in[0]); }, {leaf(random_tensor({4}, 1))});
  EXPECT_TRUE(good.ok);
  EXPECT_GT(good.max_abs_error, 0.0);  // the comparison really ran
}

}  // namespace
}  // namespace sn
