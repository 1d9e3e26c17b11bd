// tests/test_util.h — helpers shared by the test suites: random tensors, nested windows of
// larger parameters, closeness checks and gradcheck assertions.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"

namespace sn::testing {

inline Tensor random_tensor(const Shape& sizes, uint64_t seed, float scale = 1.f) {
  Generator gen(seed);
  return randn(sizes, gen) * scale;
}

// A parameter larger than `window` in every dim (by `extra`), randomly filled, requiring grad.
// nested_window() returns its prefix of size `window`: a strided view, not a copy.
inline Tensor larger_parameter(const Shape& window, uint64_t seed, int64_t extra = 2) {
  Shape big = window;
  for (auto& s : big) s += extra;
  Tensor p = random_tensor(big, seed);
  p.set_requires_grad(true);
  return p;
}
inline Tensor nested_window(const Tensor& param, const Shape& window) { return param.prefix(window); }

inline Tensor leaf(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

inline void expect_close(const std::vector<float>& actual, const std::vector<float>& expected,
                         float tol = 1e-4f, const char* what = "") {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (size_t i = 0; i < actual.size(); ++i) {
    float scale = std::max(1.f, std::fabs(expected[i]));
    ASSERT_NEAR(actual[i], expected[i], tol * scale) << what << " element " << i;
  }
}

inline void expect_close(const Tensor& actual, const std::vector<float>& expected, float tol = 1e-4f,
                         const char* what = "") {
  expect_close(to_vector<float>(actual), expected, tol, what);
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

inline void expect_gradcheck(const Fn& f, const std::vector<Tensor>& inputs, GradcheckOptions o = {}) {
  GradcheckResult r = gradcheck(f, inputs, o);
  EXPECT_TRUE(r.ok) << r.message << " (max abs error " << r.max_abs_error << ")";
}

// Row-major multi-index helpers for reference implementations.
inline int64_t idx4(const Shape& s, int64_t a, int64_t b, int64_t c, int64_t d) {
  return ((a * s[1] + b) * s[2] + c) * s[3] + d;
}

}  // namespace sn::testing
