// tests/test_ops.cpp — every op's forward pass against the naive reference, on contiguous
// tensors and on nested windows of larger tensors.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>
#include <utility>

#include "kernels/cpu/conv_direct.h"
#include "kernels/cpu/conv_shifted.h"
#include "kernels/cpu/gemm_invariant.h"
#include "kernels/cpu/gemm_skinny.h"
#include "kernels/cpu/vec_math.h"
#include "reference.h"
#include "test_util.h"

namespace sn {
namespace {

using testing::expect_close;
using testing::leaf;
using testing::random_tensor;
using V = std::vector<float>;

// The same values as a contiguous tensor and as a nested window of a larger one.
struct Both {
  Tensor contiguous, window;
};
Both both(const Shape& sizes, uint64_t seed, float scale = 1.f) {
  Tensor big = random_tensor([&] { Shape s = sizes; for (auto& d : s) d += 3; return s; }(), seed, scale);
  Tensor w = big.prefix(sizes);
  return {w.contiguous(), w};
}

TEST(Ops, ElementwiseAndBroadcast) {
  for (bool nested : {false, true}) {
    Both a = both({3, 4}, 1), b = both({4}, 2);
    Tensor x = nested ? a.window : a.contiguous, y = nested ? b.window : b.contiguous;
    V xv = to_vector<float>(x), yv = to_vector<float>(y);
    V add(12), mul(12), div(12);
    for (int i = 0; i < 12; ++i) {
      add[i] = xv[i] + yv[i % 4];
      mul[i] = xv[i] * yv[i % 4];
      div[i] = xv[i] / yv[i % 4];
    }
    expect_close(x + y, add, 1e-6f, "add");
    expect_close(x * y, mul, 1e-6f, "mul");
    expect_close(x / y, div, 1e-5f, "div");
    expect_close(x - 1.5f, [&] { V r = xv; for (auto& v : r) v -= 1.5f; return r; }(), 1e-6f, "sub scalar");
    struct U {
      Tensor (*op)(const Tensor&);
      float (*f)(float);
    };
    for (U u : {U{relu, [](float v) { return v > 0 ? v : 0.f; }},
                U{tanh, [](float v) { return std::tanh(v); }},
                U{sigmoid, [](float v) { return 1.f / (1.f + std::exp(-v)); }},
                U{silu, [](float v) { return v / (1.f + std::exp(-v)); }},
                U{exp, [](float v) { return std::exp(v); }},
                U{neg, [](float v) { return -v; }},
                U{square, [](float v) { return v * v; }},
                U{abs, [](float v) { return std::fabs(v); }}}) {
      V r = xv;
      for (auto& v : r) v = u.f(v);
      expect_close(u.op(x), r, 1e-5f, "unary");
    }
    V g = xv, gt = xv;
    for (auto& v : g) v = 0.5f * v * (1.f + std::erf(v / std::sqrt(2.f)));
    for (auto& v : gt) v = 0.5f * v * (1.f + std::tanh(0.7978845608f * (v + 0.044715f * v * v * v)));
    expect_close(gelu(x), g, 1e-5f, "gelu");
    expect_close(gelu(x, true), gt, 1e-5f, "gelu_tanh");
    V ax = to_vector<float>(abs(x) + 0.1f);
    V lg = ax, sq = ax;
    for (auto& v : lg) v = std::log(v);
    for (auto& v : sq) v = std::sqrt(v);
    expect_close(log(abs(x) + 0.1f), lg, 1e-5f, "log");
    expect_close(sqrt(abs(x) + 0.1f), sq, 1e-5f, "sqrt");
  }
}

// The vectorisable exp and erf of the CPU kernels against double precision, over their whole
// range and at the edges (overflow, underflow to 0, infinities, NaN).
TEST(Ops, VectorMathMatchesDoublePrecision) {
  double worst_exp = 0.0, worst_erf = 0.0, worst_gelu_grad = 0.0;
  for (int64_t k = -1'000'000; k <= 1'000'000; ++k) {
    const float x = float(k) * 88.7f / 1e6f;
    const double e = std::exp(double(x));
    if (e >= 1.2e-38) worst_exp = std::max(worst_exp, std::fabs(cpu::exp_fast(x) - e) / e);
    const float z = float(k) * 6.f / 1e6f;
    worst_erf = std::max(worst_erf, std::fabs(cpu::erf_fast(z) - std::erf(double(z))));
    const double cdf = 0.5 * (1.0 + std::erf(double(z) / std::sqrt(2.0)));
    const double grad = cdf + double(z) * std::exp(-0.5 * double(z) * double(z)) / std::sqrt(2.0 * M_PI);
    worst_gelu_grad = std::max(worst_gelu_grad, std::fabs(cpu::gelu_derivative_fast(z) - grad));
  }
  std::printf("worst: exp %.3g relative, erf %.3g absolute, gelu' %.3g absolute\n", worst_exp, worst_erf,
              worst_gelu_grad);
  EXPECT_LT(worst_exp, 1.2e-7) << "exp: 1 ulp";
  EXPECT_LT(worst_erf, 4e-7);
  EXPECT_LT(worst_gelu_grad, 1e-6);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(cpu::exp_fast(0.f), 1.f);
  EXPECT_EQ(cpu::exp_fast(-inf), 0.f);
  EXPECT_EQ(cpu::exp_fast(-100.f), 0.f);
  EXPECT_EQ(cpu::exp_fast(inf), inf);
  EXPECT_EQ(cpu::exp_fast(89.f), inf);
  EXPECT_TRUE(std::isfinite(cpu::exp_fast(88.72f)));
  EXPECT_NEAR(cpu::exp_fast(88.72f) / std::exp(double(88.72f)), 1.0, 2.4e-7);
  EXPECT_TRUE(std::isnan(cpu::exp_fast(nan)));
  EXPECT_EQ(cpu::erf_fast(inf), 1.f);
  EXPECT_EQ(cpu::erf_fast(-inf), -1.f);
  EXPECT_EQ(cpu::erf_fast(0.f), 0.f);
  EXPECT_TRUE(std::isnan(cpu::erf_fast(nan)));
  EXPECT_EQ(cpu::gelu_fast(-inf) == cpu::gelu_fast(-inf), false) << "-inf · 0 is NaN, as in libm";
  EXPECT_EQ(cpu::gelu_fast(inf), inf);
}

// Rows as wide as the transformers' (the 16-lane loops and their tails) and more rows than one
// block of the norm's weight gradient: softmax, log-softmax and LayerNorm with its gradients
// against double-precision references.
TEST(Ops, RowKernelsAtTransformerWidths) {
  for (int64_t C : {15, 16, 50, 257}) {
    Both a = both({37, C}, 40 + uint64_t(C), 4.f);
    V xv = to_vector<float>(a.window);
    expect_close(softmax(a.window), ref::softmax(xv, 37, C, false), 1e-5f, "softmax");
    expect_close(log_softmax(a.window), ref::softmax(xv, 37, C, true), 1e-5f, "log_softmax");
    Tensor masked = a.contiguous.clone();  // a fully masked row of attention scores: -inf, a row of 0s
    masked.narrow(0, 3, 1).narrow(1, 1, C - 1).fill_(-std::numeric_limits<float>::infinity());
    V sm = to_vector<float>(softmax(masked));
    for (int64_t i = 0; i < C; ++i) EXPECT_EQ(sm[size_t(3 * C + i)], i == 0 ? 1.f : 0.f);
  }
  const int64_t R = 70, D = 192;  // three row blocks, the last one partial
  for (bool nested : {false, true}) {
    Both a = both({R, D}, 50, 3.f), g = both({R, D}, 51);
    Tensor W = random_tensor({D + 8}, 52), B = random_tensor({D + 8}, 53);
    Tensor w = leaf(nested ? W.detach() : W.narrow(0, 0, D).contiguous()),
           b = leaf(nested ? B.detach() : B.narrow(0, 0, D).contiguous());
    Tensor x = leaf(a.contiguous.clone());
    Tensor wv_t = nested ? w.narrow(0, 0, D) : w, bv_t = nested ? b.narrow(0, 0, D) : b;
    Tensor y = layer_norm(x, wv_t, bv_t);
    V xv = to_vector<float>(x.detach()), wv = to_vector<float>(wv_t.detach()), bv = to_vector<float>(bv_t.detach()),
      gv = to_vector<float>(g.contiguous);
    expect_close(y, ref::layer_norm(xv, wv, bv, R, D, 1e-5f, false), 1e-4f, "layer_norm");
    sum(y * g.window).backward();
    V dx(size_t(R * D)), dw(size_t(D), 0.f), db(size_t(D), 0.f);
    std::vector<double> dwd(size_t(D), 0.0), dbd(size_t(D), 0.0);
    for (int64_t r = 0; r < R; ++r) {
      double mu = 0, var = 0;
      for (int64_t i = 0; i < D; ++i) mu += xv[size_t(r * D + i)];
      mu /= double(D);
      for (int64_t i = 0; i < D; ++i) var += std::pow(xv[size_t(r * D + i)] - mu, 2);
      const double rs = 1.0 / std::sqrt(var / double(D) + 1e-5);
      double mg = 0, mgx = 0;
      for (int64_t i = 0; i < D; ++i) {
        const double xhat = (xv[size_t(r * D + i)] - mu) * rs, gg = double(gv[size_t(r * D + i)]) * wv[size_t(i)];
        mg += gg / double(D);
        mgx += gg * xhat / double(D);
        dwd[size_t(i)] += double(gv[size_t(r * D + i)]) * xhat;
        dbd[size_t(i)] += gv[size_t(r * D + i)];
      }
      for (int64_t i = 0; i < D; ++i) {
        const double xhat = (xv[size_t(r * D + i)] - mu) * rs, gg = double(gv[size_t(r * D + i)]) * wv[size_t(i)];
        dx[size_t(r * D + i)] = float(rs * (gg - mg - xhat * mgx));
      }
    }
    for (int64_t i = 0; i < D; ++i) {
      dw[size_t(i)] = float(dwd[size_t(i)]);
      db[size_t(i)] = float(dbd[size_t(i)]);
    }
    expect_close(x.grad(), dx, 1e-4f, "layer_norm dx");
    Tensor gw = nested ? w.grad().narrow(0, 0, D) : w.grad(), gb = nested ? b.grad().narrow(0, 0, D) : b.grad();
    expect_close(gw, dw, 1e-4f, "layer_norm dw");
    expect_close(gb, db, 1e-4f, "layer_norm db");
    if (nested) {  // the gradient stays in the window: the 8 entries past it are untouched
      EXPECT_EQ(to_vector<float>(w.grad().narrow(0, D, 8)), V(8, 0.f));
      EXPECT_EQ(to_vector<float>(b.grad().narrow(0, D, 8)), V(8, 0.f));
    }
  }
}

TEST(Ops, Reductions) {
  for (bool nested : {false, true}) {
    Both a = both({3, 4, 5}, 3);
    Tensor x = nested ? a.window : a.contiguous;
    V xv = to_vector<float>(x);
    double total = 0;
    V s1(15, 0.f), s02(4, 0.f);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j)
        for (int k = 0; k < 5; ++k) {
          float v = xv[(i * 4 + j) * 5 + k];
          total += v;
          s1[i * 5 + k] += v;
          s02[j] += v;
        }
    EXPECT_NEAR(sum(x).item(), total, 1e-4);
    EXPECT_NEAR(mean(x).item(), total / 60.0, 1e-5);
    expect_close(sum(x, {1}), s1, 1e-5f, "sum dim 1");
    expect_close(sum(x, {0, 2}), s02, 1e-5f, "sum dims 0,2");
    EXPECT_EQ(sum(x, {0, 2}, true).sizes(), (Shape{1, 4, 1}));
    V m02 = s02;
    for (auto& v : m02) v /= 15.f;
    expect_close(mean(x, {0, -1}), m02, 1e-5f, "mean");
    expect_close(sum_to(x, {4, 1}), [&] {
      V r(4, 0.f);
      for (int i = 0; i < 60; ++i) r[(i / 5) % 4] += xv[i];
      return r;
    }(), 1e-5f, "sum_to");
  }
  // Large enough for the parallel paths.
  Tensor big = random_tensor({300, 257}, 4);
  V bv = to_vector<float>(big);
  double t = 0;
  V cols(257, 0.f);
  for (int i = 0; i < 300 * 257; ++i) {
    t += bv[i];
    cols[i % 257] += bv[i];
  }
  EXPECT_NEAR(sum(big).item(), t, 1e-2);
  expect_close(sum(big, {0}), cols, 1e-4f, "column sums");
}

TEST(Ops, MatmulOnWindowsAndTransposes) {
  for (bool nested : {false, true}) {
    Both a = both({5, 7}, 5), b = both({7, 3}, 6);
    Tensor x = nested ? a.window : a.contiguous, y = nested ? b.window : b.contiguous;
    V ref = ref::matmul(to_vector<float>(x), to_vector<float>(y), 5, 7, 3);
    expect_close(matmul(x, y), ref, 1e-5f, "matmul");
    V scaled = ref;
    for (float& v : scaled) v *= -0.25f;
    expect_close(matmul(x, y, -0.25f), scaled, 1e-5f, "alpha · matmul");
    // The same product through transposed views (column-major operands).
    Tensor xt = x.t().contiguous().t(), yt = y.t().contiguous().t();
    expect_close(matmul(xt, yt), ref, 1e-5f, "matmul transposed operands");
    // Output transposed: (y^T x^T)^T.
    expect_close(matmul(y.t(), x.t()).t().contiguous(), ref, 1e-5f, "matmul transposed output");
  }
  // A non-BLAS view (inner stride 2 on both dims) is packed, not rejected.
  Tensor s = random_tensor({10, 14}, 7).slice(0, 0, 10, 2).slice(1, 0, 14, 2);
  Tensor r = random_tensor({7, 2}, 8);
  expect_close(matmul(s, r), ref::matmul(to_vector<float>(s), to_vector<float>(r), 5, 7, 2), 1e-5f);
  // Batched: 3 matrices one after another, 9 split across the threads (one transposed operand).
  for (int64_t n : {3, 9}) {
    Tensor ba = random_tensor({n, 4, 5}, 9), bb = random_tensor({n, 2, 5}, 10).transpose(1, 2);
    Tensor bo = matmul(ba, bb);
    for (int64_t i = 0; i < n; ++i)
      expect_close(bo.select(0, i),
                   ref::matmul(to_vector<float>(ba.select(0, i)), to_vector<float>(bb.select(0, i)), 4, 5, 2), 1e-5f);
  }
  // An error inside the batch-parallel loop (an output BLAS cannot write) comes out as sn::Error.
  Tensor c = zeros({9, 8, 4}).slice(1, 0, 8, 2).slice(2, 0, 4, 2);
  EXPECT_THROW(backend_for(Device::cpu()).gemm(c, random_tensor({9, 4, 5}, 11), random_tensor({9, 5, 2}, 12), 1.f, 0.f),
               Error);
}

// The backend GEMM on shapes that cross the blocking of the portable kernel (kernels/cpu/sgemm.cpp)
// and of OpenBLAS: transposed operands, a strided output window (row- or column-major), alpha
// and beta; beta = 0 must not keep the NaNs the output held, and nothing outside the window moves.
TEST(Ops, GemmAlphaBetaAcrossBlockEdges) {
  Backend& cpu = backend_for(Device::cpu());
  struct Case {
    int64_t M, K, N;
  };
  uint64_t seed = 100;
  for (Case s : {Case{13, 70, 3085}, Case{200, 520, 37}, Case{1, 1, 1}, Case{7, 1, 5}}) {
    for (int variant = 0; variant < 4; ++variant) {
      const bool ta = variant & 1, tb = variant & 2, col_major = variant == 3;
      Tensor a = ta ? random_tensor({s.K, s.M}, seed++).t() : random_tensor({s.M, s.K}, seed++);
      Tensor b = tb ? random_tensor({s.N, s.K}, seed++).t() : random_tensor({s.K, s.N}, seed++);
      const V ab = ref::matmul(to_vector<float>(a), to_vector<float>(b), s.M, s.K, s.N);
      for (float beta : {0.f, 1.f, -0.5f}) {
        Tensor big = col_major ? random_tensor({s.N + 5, s.M + 2}, seed++).t() : random_tensor({s.M + 2, s.N + 5}, seed++);
        Tensor c = big.prefix({s.M, s.N});
        if (beta == 0.f) cpu.fill(c, std::numeric_limits<float>::quiet_NaN());
        const V c0 = to_vector<float>(c), big0 = to_vector<float>(big);
        V want(ab.size());
        for (size_t i = 0; i < ab.size(); ++i) want[i] = 0.5f * ab[i] + (beta == 0.f ? 0.f : beta * c0[i]);
        cpu.gemm(c, a, b, 0.5f, beta);
        expect_close(c, want, 1e-4f, "gemm window");
        const V big1 = to_vector<float>(big);
        for (int64_t i = 0; i < s.M + 2; ++i)
          for (int64_t j = 0; j < s.N + 5; ++j)
            if (i >= s.M || j >= s.N) {
              ASSERT_EQ(big1[size_t(i * (s.N + 5) + j)], big0[size_t(i * (s.N + 5) + j)]);
            }
      }
    }
  }
}

// The skinny GEMM (kernels/cpu/gemm_skinny.h): x · Wᵀ for 1–16 rows on windows of W, every
// block shape and tail (N mod 16 from 0 to 15), alpha and beta, against the reference, nothing
// written outside the output window; each row's result bit for bit the one that row gets alone;
// a product large enough to be split across the threads; and matmul reaching it.
TEST(Ops, SkinnyGemmOnWindowsAndRowByRowIdentical) {
  if (!cpu::skinny_gemm_applies(false, true, 4, 64, 64)) GTEST_SKIP() << "no AVX-512 here: the skinny GEMM is not used";
  struct Case {
    int64_t N, K;
  };
  uint64_t seed = 300;
  for (Case s : {Case{16, 64}, Case{37, 100}, Case{28, 64}, Case{45, 79}, Case{256, 256}, Case{70, 688},
                 Case{23, 79}, Case{300, 1000}}) {
    Tensor W = random_tensor({s.N + 3, s.K + 9}, seed++);  // the weight is a window [:N, :K]
    Tensor w = W.prefix({s.N, s.K});
    for (int64_t M : {1, 2, 3, 4, 5, 7, 8, 9, 13, 16}) {
      Tensor X = random_tensor({M, s.K + 5}, seed++);
      Tensor x = X.prefix({M, s.K});
      ASSERT_TRUE(cpu::skinny_gemm_applies(false, true, M, s.N, s.K));
      const V xw = ref::matmul(to_vector<float>(x), to_vector<float>(w.t()), M, s.K, s.N);
      for (float beta : {0.f, -0.5f}) {
        Tensor big = random_tensor({M, s.N + 2}, seed++);
        Tensor c = big.prefix({M, s.N});
        if (beta == 0.f) backend_for(Device::cpu()).fill(c, std::numeric_limits<float>::quiet_NaN());
        const V c0 = to_vector<float>(c), big0 = to_vector<float>(big);
        V want(xw.size());
        for (size_t i = 0; i < xw.size(); ++i) want[i] = 2.f * xw[i] + (beta == 0.f ? 0.f : beta * c0[i]);
        cpu::skinny_gemm(M, s.N, s.K, 2.f, x.data<float>(), x.stride(0), w.data<float>(), w.stride(0), beta,
                         c.data<float>(), c.stride(0));
        // float sums of K products against double: rounding grows like √K
        expect_close(c, want, std::max(2e-5f, 3e-5f * std::sqrt(float(s.K) / 256.f)), "skinny gemm");
        const V big1 = to_vector<float>(big);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = s.N; j < s.N + 2; ++j) ASSERT_EQ(big1[size_t(i * (s.N + 2) + j)], big0[size_t(i * (s.N + 2) + j)]);
        // Row by row: every row of the M-row product equals that row's 1-row product exactly.
        Tensor one = random_tensor({1, s.N}, seed++);
        for (int64_t m = 0; m < M; ++m) {
          one.copy_(from_vector(V(c0.begin() + m * s.N, c0.begin() + (m + 1) * s.N), {1, s.N}));  // C before
          cpu::skinny_gemm(1, s.N, s.K, 2.f, x.data<float>() + m * x.stride(0), x.stride(0), w.data<float>(),
                           w.stride(0), beta, one.data<float>(), s.N);
          ASSERT_EQ(to_vector<float>(one), to_vector<float>(c.narrow(0, m, 1))) << "M " << M << " row " << m;
        }
      }
    }
  }
  // Through matmul (8 rows of a 300-wide window): the skinny kernel's result, bit for bit; with
  // the kernel off, the other path agrees to rounding.
  Tensor x = random_tensor({8, 300}, 1), w = random_tensor({150, 310}, 2).prefix({150, 300});
  Tensor on = matmul(x, w.t()), direct = zeros({8, 150});
  cpu::skinny_gemm(8, 150, 300, 1.f, x.data<float>(), 300, w.data<float>(), w.stride(0), 0.f, direct.data<float>(), 150);
  EXPECT_EQ(to_vector<float>(on), to_vector<float>(direct));
  // One row (decoding one byte) reaches it too, whichever OpenBLAS kernels run: a row decoded alone
  // is bit for bit the same row of a verification pass over 8.
  Tensor one = matmul(x.narrow(0, 0, 1), w.t());
  EXPECT_EQ(to_vector<float>(one), to_vector<float>(direct.narrow(0, 0, 1)));
  cpu::set_skinny_gemm_enabled(false);
  EXPECT_FALSE(cpu::skinny_gemm_applies(false, true, 8, 150, 300));
  Tensor off = matmul(x, w.t());
  cpu::set_skinny_gemm_enabled(true);
  expect_close(on, to_vector<float>(off), 1e-4f, "skinny on vs off");
}

// The row-invariant products decoding uses (gemm_invariant.h): each layout against a double
// reference on windows, with alpha and beta; every row of an M-row product bit for bit that row
// alone; every column the bits it gets in a product of one column; zero terms past K (masked
// attention weights) changing nothing; and matmul under a guard: the reference's values for
// every shape the skinny kernel now takes there (N < 16, K < 64), rows the same bits as alone,
// and the guard reaching the batched product's worker threads but not another thread.
TEST(Ops, RowInvariantProductsAreOneFixedSumPerOutput) {
  uint64_t seed = 500;
  for (bool trans_a : {false, true})
    for (bool trans_b : {false, true})
      for (auto [K, N] : {std::pair<int64_t, int64_t>{1, 37}, {16, 5}, {32, 64}, {45, 130}, {256, 37}}) {
        const int64_t M = 19;  // N = 64 and 130: whole blocks of 64 columns, then a tail
        // op(A) [M, K] and op(B) [K, N], stored as the flags say, each a window of a larger tensor.
        Tensor A = trans_a ? random_tensor({K, M + 3}, seed++).prefix({K, M}) : random_tensor({M, K + 3}, seed++).prefix({M, K});
        Tensor B = trans_b ? random_tensor({N, K + 2}, seed++).prefix({N, K}) : random_tensor({K, N + 2}, seed++).prefix({K, N});
        const Tensor opa = trans_a ? A.t() : A, opb = trans_b ? B.t() : B;
        const V ab = ref::matmul(to_vector<float>(opa), to_vector<float>(opb), M, K, N);
        for (float beta : {0.f, 0.5f}) {
          Tensor c = random_tensor({M, N}, seed++);
          if (beta == 0.f) c.fill_(std::numeric_limits<float>::quiet_NaN());
          const V c0 = to_vector<float>(c);
          V want(ab.size());
          for (size_t i = 0; i < ab.size(); ++i) want[i] = 1.5f * ab[i] + (beta == 0.f ? 0.f : beta * c0[i]);
          cpu::invariant_gemm(trans_a, trans_b, M, N, K, 1.5f, A.data<float>(), A.stride(0), B.data<float>(), B.stride(0),
                              beta, c.data<float>(), N);
          expect_close(c, want, 3e-5f, "invariant gemm");
        }
        // Row by row and column by column: the same bits.
        Tensor all = zeros({M, N}), row = zeros({1, N}), col = zeros({M, 1});
        cpu::invariant_gemm(trans_a, trans_b, M, N, K, 1.f, A.data<float>(), A.stride(0), B.data<float>(), B.stride(0),
                            0.f, all.data<float>(), N);
        for (int64_t m : {int64_t(0), int64_t(7), M - 1}) {
          const float* a = trans_a ? A.data<float>() + m : A.data<float>() + m * A.stride(0);
          cpu::invariant_gemm(trans_a, trans_b, 1, N, K, 1.f, a, A.stride(0), B.data<float>(), B.stride(0), 0.f,
                              row.data<float>(), N);
          ASSERT_EQ(to_vector<float>(row), to_vector<float>(all.narrow(0, m, 1))) << "row " << m << " K " << K;
        }
        for (int64_t n : {int64_t(0), N / 2, N - 1}) {
          const float* b = trans_b ? B.data<float>() + n * B.stride(0) : B.data<float>() + n;
          cpu::invariant_gemm(trans_a, trans_b, M, 1, K, 1.f, A.data<float>(), A.stride(0), b, B.stride(0), 0.f,
                              col.data<float>(), 1);
          ASSERT_EQ(to_vector<float>(col), to_vector<float>(all.narrow(1, n, 1).contiguous())) << "column " << n;
        }
      }
  // Attention weights times values: a row of a longer cache whose extra weights are zero (masked)
  // sums to the same bits as the shorter row.
  for (int64_t S : {5, 16, 17, 40}) {
    Tensor p = random_tensor({3, S}, seed++), v = random_tensor({S + 9, 32}, seed++);
    Tensor longer = zeros({3, S + 9});
    longer.narrow(1, 0, S).copy_(p);
    Tensor short_out = zeros({3, 32}), long_out = zeros({3, 32});
    cpu::invariant_gemm(false, false, 3, 32, S, 1.f, p.data<float>(), S, v.data<float>(), 32, 0.f, short_out.data<float>(), 32);
    cpu::invariant_gemm(false, false, 3, 32, S + 9, 1.f, longer.data<float>(), S + 9, v.data<float>(), 32, 0.f,
                        long_out.data<float>(), 32);
    ASSERT_EQ(to_vector<float>(short_out), to_vector<float>(long_out)) << "S " << S;
  }
  // Through matmul while a guard is alive: rows of x·Wᵀ (W4's 256 × 256) and of attention's
  // products (head dimension 32, a cache of 21 keys) the same bits in a product of 3 or 17 rows
  // as alone; without the guard OpenBLAS and the skinny kernel share out those row counts.
  Tensor x = random_tensor({17, 256}, 1), w = random_tensor({256, 256}, 2);
  Tensor q = random_tensor({4, 17, 32}, 3), keys = random_tensor({4, 21, 32}, 4), p = random_tensor({4, 17, 21}, 5);
  {
    const cpu::RowInvariantProducts guard;
    EXPECT_TRUE(cpu::RowInvariantProducts::active());
    for (int64_t M : {3, 17}) {
      const Tensor xw = matmul(x.narrow(0, 0, M), w.t());
      const Tensor scores = matmul(q.narrow(1, 0, M), keys.transpose(1, 2)), pv = matmul(p.narrow(1, 0, M), keys);
      for (int64_t i : {int64_t(0), M - 1}) {
        ASSERT_EQ(to_vector<float>(matmul(x.narrow(0, i, 1), w.t())), to_vector<float>(xw.narrow(0, i, 1))) << M;
        ASSERT_EQ(to_vector<float>(matmul(q.narrow(1, i, 1), keys.transpose(1, 2))),
                  to_vector<float>(scores.narrow(1, i, 1).contiguous())) << M;
        ASSERT_EQ(to_vector<float>(matmul(p.narrow(1, i, 1), keys)), to_vector<float>(pv.narrow(1, i, 1).contiguous())) << M;
      }
    }
  }
  EXPECT_FALSE(cpu::RowInvariantProducts::active());
  expect_close(matmul(x, w.t()), ref::matmul(to_vector<float>(x), to_vector<float>(w.t()), 17, 256, 256), 1e-4f, "usual path");
  {
    const cpu::RowInvariantProducts guard;
    for (int64_t M : {1, 17})
      for (int64_t N : {1, 5, 15})
        for (int64_t K : {1, 7, 32}) {
          Tensor xs = random_tensor({M, K}, seed++), ws = random_tensor({N, K + 3}, seed++).prefix({N, K});
          expect_close(matmul(xs, ws.t()), ref::matmul(to_vector<float>(xs), to_vector<float>(ws.t()), M, K, N), 2e-5f,
                       "A·Bᵀ under the guard");
        }
    // Another thread is not affected (its products take the usual path).
    bool elsewhere = true;
    std::thread([&] { elsewhere = cpu::RowInvariantProducts::active(); }).join();
    EXPECT_FALSE(elsewhere);
  }
}

// A softmax row with masked (−inf) positions after its last one gives the shorter row's bits: the
// sums put each term in lane i mod 16, the tail too.
TEST(Ops, SoftmaxOfAMaskedRowEqualsTheShorterRow) {
  for (int64_t n : {1, 5, 16, 20, 33}) {
    for (int64_t extra : {1, 11, 30}) {
      Tensor x = random_tensor({2, n}, uint64_t(n * 100 + extra));
      Tensor longer = full({2, n + extra}, -std::numeric_limits<float>::infinity());
      longer.narrow(1, 0, n).copy_(x);
      for (bool log : {false, true}) {
        const Tensor a = log ? log_softmax(x, -1) : softmax(x, -1);
        const Tensor b = (log ? log_softmax(longer, -1) : softmax(longer, -1)).narrow(1, 0, n).contiguous();
        ASSERT_EQ(to_vector<float>(a), to_vector<float>(b)) << "n " << n << " extra " << extra << " log " << log;
      }
    }
  }
}

TEST(Ops, LinearOnAWeightWindow) {
  Tensor W = random_tensor({16, 12}, 11), B = random_tensor({16}, 12);
  for (bool nested : {false, true}) {
    Tensor w = nested ? W.prefix({10, 7}) : W.prefix({10, 7}).contiguous();
    Tensor b = nested ? B.narrow(0, 0, 10) : B.narrow(0, 0, 10).contiguous();
    Tensor x = random_tensor({2, 3, 7}, 13);
    Tensor y = linear(x, w, b);
    EXPECT_EQ(y.sizes(), (Shape{2, 3, 10}));
    expect_close(y, ref::linear(to_vector<float>(x), to_vector<float>(w), to_vector<float>(b), 6, 7, 10), 1e-5f);
    expect_close(linear(x, w), ref::linear(to_vector<float>(x), to_vector<float>(w), {}, 6, 7, 10), 1e-5f);
  }
}

TEST(Ops, SoftmaxAndCrossEntropy) {
  for (bool nested : {false, true}) {
    Both a = both({4, 6}, 14, 3.f);
    Tensor x = nested ? a.window : a.contiguous;
    V xv = to_vector<float>(x);
    expect_close(softmax(x), ref::softmax(xv, 4, 6, false), 1e-5f, "softmax");
    expect_close(log_softmax(x), ref::softmax(xv, 4, 6, true), 1e-5f, "log_softmax");
    // Over dim 0: transpose, reference, transpose back.
    V xtv = to_vector<float>(x.t());
    V st = ref::softmax(xtv, 6, 4, false);
    expect_close(softmax(x, 0).t().contiguous(), st, 1e-5f, "softmax dim 0");
    std::vector<int64_t> t{1, 5, 0, 3};
    Tensor tt = from_vector(t, {4});
    EXPECT_NEAR(cross_entropy(x, tt).item(), ref::cross_entropy_mean(xv, t, 4, 6, -100, 0.f), 1e-5);
    EXPECT_NEAR(cross_entropy(x, tt, Reduction::mean, -100, 0.1f).item(),
                ref::cross_entropy_mean(xv, t, 4, 6, -100, 0.1f), 1e-5);
    std::vector<int64_t> ti{1, -100, 0, -100};
    EXPECT_NEAR(cross_entropy(x, from_vector(ti, {4})).item(),
                ref::cross_entropy_mean(xv, ti, 4, 6, -100, 0.f), 1e-5);
    // The mean counts the rows not ignored, whatever ignore_index is; none counted gives 0.
    std::vector<int64_t> tk{2, 5, 2, 0};
    EXPECT_NEAR(cross_entropy(x, from_vector(tk, {4}), Reduction::mean, 2).item(),
                ref::cross_entropy_mean(xv, tk, 4, 6, 2, 0.f), 1e-5);
    Tensor all_ignored = from_vector(std::vector<int64_t>{-100, -100, -100, -100}, {4});
    Tensor leaf = x.detach().clone().set_requires_grad();
    Tensor zero = cross_entropy(leaf, all_ignored);
    EXPECT_EQ(zero.item(), 0.f);
    zero.backward();
    EXPECT_EQ(to_vector<float>(leaf.grad()), V(24, 0.f));
    Tensor none = cross_entropy(x, tt, Reduction::none);
    EXPECT_EQ(none.sizes(), (Shape{4}));
    EXPECT_NEAR(sum(none).item(), 4 * ref::cross_entropy_mean(xv, t, 4, 6, -100, 0.f), 1e-4);
  }
  Tensor x = random_tensor({2, 3}, 1);
  EXPECT_THROW(cross_entropy(x, from_vector(std::vector<int64_t>{0, 3}, {2})), Error);
  EXPECT_THROW(cross_entropy(x, from_vector(std::vector<int64_t>{0}, {1})), Error);
}

TEST(Ops, NormsOverTheActivePrefix) {
  Tensor W = random_tensor({12}, 20), B = random_tensor({12}, 21);
  for (bool nested : {false, true}) {
    Both a = both({5, 8}, 22, 2.f);
    Tensor x = nested ? a.window : a.contiguous;
    Tensor w = nested ? W.narrow(0, 0, 8) : W.narrow(0, 0, 8).contiguous();
    Tensor b = nested ? B.narrow(0, 0, 8) : B.narrow(0, 0, 8).contiguous();
    V xv = to_vector<float>(x), wv = to_vector<float>(w), bv = to_vector<float>(b);
    expect_close(layer_norm(x, w, b), ref::layer_norm(xv, wv, bv, 5, 8, 1e-5f, false), 1e-4f, "layer_norm");
    expect_close(layer_norm(x, Tensor(), Tensor()), ref::layer_norm(xv, {}, {}, 5, 8, 1e-5f, false), 1e-4f);
    expect_close(rms_norm(x, w), ref::layer_norm(xv, wv, {}, 5, 8, 1e-6f, true), 1e-4f, "rms_norm");
  }
}

TEST(Ops, BatchNormTrainAndEval) {
  Tensor W = random_tensor({8}, 30), B = random_tensor({8}, 31);
  for (bool nested : {false, true}) {
    Both a = both({4, 5, 3, 3}, 32);
    Tensor x = nested ? a.window : a.contiguous;
    Tensor w = W.narrow(0, 0, 5), b = B.narrow(0, 0, 5);
    Tensor rm = zeros({8}), rv = ones({8});
    Tensor y = batch_norm(x, w, b, rm.narrow(0, 0, 5), rv.narrow(0, 0, 5), true, 0.1f, 1e-5f);
    V xv = to_vector<float>(x);
    expect_close(y, ref::batch_norm(xv, to_vector<float>(w), to_vector<float>(b), 4, 5, 9, 1e-5f), 1e-4f, "bn train");
    // Running statistics moved 10% toward the batch's (unbiased variance); the window only.
    V rmv = to_vector<float>(rm), rvv = to_vector<float>(rv);
    double mu0 = 0;
    for (int n = 0; n < 4; ++n)
      for (int p = 0; p < 9; ++p) mu0 += xv[(n * 5 + 0) * 9 + p];
    mu0 /= 36.0;
    EXPECT_NEAR(rmv[0], 0.1 * mu0, 1e-5);
    EXPECT_EQ(rmv[6], 0.f);
    EXPECT_EQ(rvv[6], 1.f);
    // Eval uses the running statistics.
    Tensor ye = batch_norm(x, w, b, rm.narrow(0, 0, 5), rv.narrow(0, 0, 5), false);
    V yev = to_vector<float>(ye);
    float expect0 = float((xv[0] - rmv[0]) / std::sqrt(rvv[0] + 1e-5) * to_vector<float>(w)[0] + to_vector<float>(b)[0]);
    EXPECT_NEAR(yev[0], expect0, 1e-4);
  }
}

// The fused op is the composition it replaces, in values and in every gradient, for NCHW and
// [N, C] inputs, with and without a residual, in training and eval.
TEST(Ops, BatchNormReluIsBatchNormAddRelu) {
  for (const Shape& shape : {Shape{4, 5, 3, 3}, Shape{6, 5}})
    for (bool training : {true, false})
      for (bool residual : {false, true}) {
        SCOPED_TRACE(shape_str(shape) + (training ? " train" : " eval") + (residual ? " residual" : ""));
        std::vector<Tensor> y, grads;
        for (bool fused : {false, true}) {
          Tensor x = random_tensor(shape, 60).set_requires_grad(), r = random_tensor(shape, 61).set_requires_grad();
          Tensor w = random_tensor({5}, 62).set_requires_grad(), b = random_tensor({5}, 63).set_requires_grad();
          Tensor rm = random_tensor({5}, 64) * 0.1f, rv = abs(random_tensor({5}, 65)) + 0.5f;
          Tensor out = fused ? batch_norm_relu(x, w, b, rm, rv, training, 0.1f, 1e-5f, residual ? r : Tensor())
                             : relu(residual ? batch_norm(x, w, b, rm, rv, training) + r
                                             : batch_norm(x, w, b, rm, rv, training));
          sum(out * random_tensor(shape, 66)).backward();
          y.push_back(out.detach());
          for (const Tensor* t : {&x, &w, &b, &rm, &rv}) grads.push_back(t == &rm || t == &rv ? *t : t->grad());
          grads.push_back(residual ? r.grad() : zeros({1}));
        }
        expect_close(y[1], to_vector<float>(y[0]), 1e-6f, "output");
        const size_t per = grads.size() / 2;
        for (size_t i = 0; i < per; ++i) expect_close(grads[per + i], to_vector<float>(grads[i]), 1e-5f, "gradient");
      }
  {  // a NaN input gives what the ReLU gives it (0), as the composition does on every backend
    Tensor x = random_tensor({2, 3, 2, 2}, 69), rm = zeros({3}), rv = ones({3});
    x.data<float>()[5] = std::nanf("");
    const float fused = to_vector<float>(batch_norm_relu(x, Tensor(), Tensor(), rm, rv, false))[5];
    const float composed = to_vector<float>(relu(batch_norm(x, Tensor(), Tensor(), rm, rv, false)))[5];
    EXPECT_EQ(fused, composed);
  }
  Tensor x = random_tensor({2, 3, 2, 2}, 67);
  EXPECT_THROW(batch_norm_relu(x, Tensor(), Tensor(), Tensor(), Tensor(), true, 0.1f, 1e-5f, random_tensor({2, 3, 2, 1}, 68)),
               Error);
}

// The CPU backend's fused backward of BatchNorm + ReLU gives what the two kernels it replaces give
// (the backend interface's default): with and without dx and the residual's gradient, in training
// and eval, on planes with a vector tail, with a broadcast incoming gradient and with a NaN where
// the mask is 0, on one thread and on two, and for channel counts that run fused (8, 16, 20 on
// two threads) and that fall back (3).
TEST(Ops, BatchNormReluBackwardFusedMatchesSeparate) {
  Backend& k = backend_for(Device::cpu());
  const int threads = omp_get_max_threads();
  omp_set_num_threads(2);  // what the fused path runs on must not depend on this machine's cores
  for (const Shape& shape : {Shape{5, 3, 7, 7}, Shape{5, 8, 7, 7}, Shape{5, 20, 7, 7}, Shape{8, 16, 14, 14}})
    for (bool training : {true, false})
      for (bool broadcast : {false, true})
        for (int outputs = 0; outputs < 4; ++outputs) {  // bit 0: dx, bit 1: the residual's gradient
          SCOPED_TRACE(shape_str(shape) + (training ? " train" : " eval") + (broadcast ? " broadcast" : "") +
                       " outputs " + std::to_string(outputs));
          const int64_t C = shape[1];
          Tensor x = random_tensor(shape, 70), y = relu(random_tensor(shape, 71));
          Tensor dy = broadcast ? random_tensor({1, C, shape[2], shape[3]}, 72).expand(shape) : random_tensor(shape, 72);
          if (!broadcast) {  // the ReLU passes no gradient where its output is 0, not even a NaN
            const float* yp = y.data<float>();
            const int64_t masked = std::find(yp, yp + y.numel(), 0.f) - yp;
            ASSERT_LT(masked, y.numel());
            dy.data<float>()[masked] = std::nanf("");
          }
          Tensor mean = random_tensor({C}, 73) * 0.1f, invstd = abs(random_tensor({C}, 74)) + 0.5f;
          Tensor w = random_tensor({C}, 75);
          std::vector<std::vector<float>> results[2];
          for (bool fused : {false, true}) {
            Tensor dx = outputs & 1 ? full(shape, 7.f) : Tensor(), dres = outputs & 2 ? full(shape, 7.f) : Tensor();
            Tensor dw = full({C}, 0.5f), db = full({C}, -0.25f);  // accumulated into
            if (fused) k.batch_norm_relu_backward(dx, dw, db, dres, dy, y, x, mean, invstd, w, training);
            else k.Backend::batch_norm_relu_backward(dx, dw, db, dres, dy, y, x, mean, invstd, w, training);
            for (const Tensor& t : {dx, dres, dw, db})
              if (t.defined()) results[fused].push_back(to_vector<float>(t));
          }
          ASSERT_EQ(results[0].size(), results[1].size());
          for (size_t i = 0; i < results[0].size(); ++i) expect_close(results[1][i], results[0][i], 1e-6f, "output");
        }
  omp_set_num_threads(threads);
  Tensor x = random_tensor({2, 4, 3, 3}, 76), c = ones({4});
  EXPECT_THROW(k.batch_norm_relu_backward(empty({2, 4, 3, 2}), Tensor(), Tensor(), Tensor(), x, x, x, c, c, c, true),
               Error);
}

// One convolution through the direct kernel: forward against the reference, both gradients
// (inputs and filter windows of larger tensors) against im2col.
void expect_direct_matches_reference(const ref::Conv& c) {
  SCOPED_TRACE("Cin " + std::to_string(c.Cin) + " H " + std::to_string(c.H) + " W " + std::to_string(c.W) + " Cout " +
               std::to_string(c.Cout) + " K " + std::to_string(c.KH) + "x" + std::to_string(c.KW) + " pad " +
               std::to_string(c.pad) + " stride " + std::to_string(c.stride));
  const Tensor X = random_tensor({c.N, c.Cin + 1, c.H, c.W}, 50), Wt = random_tensor({c.Cout + 2, c.Cin + 3, c.KH, c.KW}, 51);
  const Tensor Bs = random_tensor({c.Cout}, 52);
  const Conv2dGeometry g{c.stride, c.stride, c.pad, c.pad, 1, 1, 1};
  struct Result {
    V y, dx, dw;
  };
  auto run = [&](cpu::ConvAlgorithm algorithm) {
    cpu::set_conv_algorithm(algorithm);
    Tensor xl = leaf(X.clone()), wl = leaf(Wt.clone());
    Tensor y = conv2d(xl.narrow(1, 0, c.Cin), wl.prefix({c.Cout, c.Cin}), Bs, g);
    Tensor dy = random_tensor(y.sizes(), 53);
    sum(mul(y, dy)).backward();
    cpu::set_conv_algorithm(cpu::ConvAlgorithm::automatic);
    return Result{to_vector<float>(y), to_vector<float>(xl.grad()), to_vector<float>(wl.grad())};
  };
  const Result unrolled = run(cpu::ConvAlgorithm::im2col);
  const V reference = ref::conv2d(to_vector<float>(X.narrow(1, 0, c.Cin)), to_vector<float>(Wt.prefix({c.Cout, c.Cin})),
                                  to_vector<float>(Bs), c);
  // The planar kernel, and the channels-last implicit GEMM (forward, and stride-1 dx).
  for (cpu::ConvAlgorithm algorithm : {cpu::ConvAlgorithm::direct, cpu::ConvAlgorithm::implicit_gemm}) {
    SCOPED_TRACE(algorithm == cpu::ConvAlgorithm::direct ? "planar" : "implicit GEMM");
    const Result direct = run(algorithm);
    expect_close(direct.y, reference, 1e-4f, "direct forward vs reference");
    expect_close(direct.dx, unrolled.dx, 1e-4f, "dx direct vs im2col");
    expect_close(direct.dw, unrolled.dw, 1e-4f, "dw direct vs im2col");
  }
}

// The direct kernels' tiles (planar and implicit GEMM), for every instruction set this CPU runs
// (AVX-512, AVX2): channel counts that leave every remainder block (1..16 channels, and input
// channels past a multiple of 16 for the GEMM's panels), output lengths around the 8- and 16-lane
// vectors, paddings up to K − 1 and beyond; strides 2 and 3 (phase-split planes: odd and even
// sizes, filters smaller than the stride so that some phases are read by no tap, with the filter
// gradient from the direct kernel or BLAS), W2's downsampling layers.
TEST(Ops, Conv2dDirectKernelTileShapes) {
  int tested = 0;
  for (cpu::DirectIsa isa : {cpu::DirectIsa::avx512, cpu::DirectIsa::avx2}) {
    cpu::set_direct_conv_isa(isa);
    if (!cpu::direct_conv_available()) continue;
    ++tested;
    SCOPED_TRACE(cpu::direct_conv_isa());
    for (const ref::Conv& c :
         {ref::Conv{2, 3, 1, 1, 5, 3, 3, 1, 1, 1, 1}, ref::Conv{2, 7, 4, 5, 13, 3, 3, 1, 1, 1, 1},
          ref::Conv{3, 16, 7, 7, 40, 3, 3, 1, 1, 1, 1}, ref::Conv{2, 9, 14, 14, 24, 3, 3, 1, 1, 1, 1},
          ref::Conv{2, 4, 13, 11, 17, 5, 5, 1, 2, 1, 1}, ref::Conv{2, 6, 9, 8, 7, 3, 3, 1, 0, 1, 1},
          ref::Conv{2, 5, 6, 6, 9, 3, 3, 1, 2, 1, 1}, ref::Conv{2, 32, 28, 28, 32, 3, 3, 1, 1, 1, 1},
          ref::Conv{2, 1, 28, 28, 12, 3, 3, 1, 1, 1, 1}, ref::Conv{2, 20, 3, 30, 11, 1, 3, 1, 1, 1, 1},
          ref::Conv{2, 32, 28, 28, 64, 3, 3, 2, 1, 1, 1}, ref::Conv{2, 64, 14, 14, 128, 3, 3, 2, 1, 1, 1},
          ref::Conv{2, 5, 9, 8, 7, 3, 3, 2, 1, 1, 1}, ref::Conv{2, 17, 7, 7, 9, 3, 3, 2, 0, 1, 1},
          ref::Conv{2, 4, 11, 13, 6, 5, 5, 2, 2, 1, 1}, ref::Conv{2, 3, 10, 9, 5, 3, 3, 3, 1, 1, 1},
          ref::Conv{2, 16, 8, 8, 5, 2, 2, 3, 1, 1, 1}, ref::Conv{2, 20, 6, 7, 4, 3, 3, 2, 3, 1, 1},
          ref::Conv{2, 18, 9, 10, 6, 2, 3, 3, 0, 1, 1}, ref::Conv{2, 33, 7, 7, 70, 3, 3, 1, 1, 1, 1},
          ref::Conv{2, 24, 5, 6, 19, 1, 3, 1, 1, 1, 1}, ref::Conv{2, 40, 5, 11, 37, 3, 3, 1, 1, 1, 1}})
      expect_direct_matches_reference(c);
  }
  cpu::set_direct_conv_isa(cpu::DirectIsa::automatic);
  if (tested == 0) GTEST_SKIP() << "this CPU or build has neither AVX-512 nor AVX2: the direct kernel does not run";
}

// A frozen filter (no gradient wanted): the input gradient alone, on every algorithm, stride 1 and 2.
TEST(Ops, Conv2dInputGradientWithAFrozenFilter) {
  for (int64_t stride : {1, 2}) {
    const Tensor X = random_tensor({2, 5, 9, 8}, 60), Wt = random_tensor({7, 5, 3, 3}, 61);
    const Conv2dGeometry g{stride, stride, 1, 1, 1, 1, 1};
    auto dx_of = [&](cpu::ConvAlgorithm algorithm) {
      cpu::set_conv_algorithm(algorithm);
      Tensor xl = leaf(X.clone());
      Tensor y = conv2d(xl, Wt, Tensor(), g);
      sum(mul(y, random_tensor(y.sizes(), 62))).backward();
      cpu::set_conv_algorithm(cpu::ConvAlgorithm::automatic);
      return to_vector<float>(xl.grad());
    };
    const V reference = dx_of(cpu::ConvAlgorithm::im2col);
    SCOPED_TRACE("stride " + std::to_string(stride));
    for (auto algorithm : {cpu::ConvAlgorithm::shifted, cpu::ConvAlgorithm::direct, cpu::ConvAlgorithm::implicit_gemm})
      expect_close(dx_of(algorithm), reference, 1e-4f, "dx with a frozen filter");
  }
}

TEST(Ops, Conv2dGroupedDepthwiseStridedPadded) {
  struct Case {
    ref::Conv c;
  };
  for (ref::Conv c : {ref::Conv{2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1}, ref::Conv{2, 4, 8, 8, 6, 3, 3, 2, 1, 1, 2},
                      ref::Conv{1, 5, 6, 7, 5, 3, 3, 1, 1, 1, 5}, ref::Conv{2, 3, 9, 9, 2, 1, 1, 2, 0, 1, 1},
                      ref::Conv{1, 2, 9, 9, 3, 3, 3, 1, 2, 2, 1}, ref::Conv{4, 5, 7, 5, 6, 3, 3, 1, 1, 1, 1},
                      ref::Conv{3, 4, 6, 8, 5, 5, 5, 1, 2, 1, 1}, ref::Conv{2, 3, 5, 6, 4, 2, 3, 1, 0, 1, 1}}) {
    for (auto algorithm : {cpu::ConvAlgorithm::automatic, cpu::ConvAlgorithm::im2col, cpu::ConvAlgorithm::shifted,
                           cpu::ConvAlgorithm::direct, cpu::ConvAlgorithm::implicit_gemm})
    for (bool nested : {false, true}) {
      cpu::set_conv_algorithm(algorithm);
      Tensor X = random_tensor({c.N, c.Cin + 2, c.H, c.W}, 40);
      Tensor Wt = random_tensor({c.Cout + 3, c.Cin / c.groups + (c.groups == 1 ? 2 : 0), c.KH, c.KW}, 41);
      Tensor Bs = random_tensor({c.Cout + 1}, 42);
      Tensor x = X.narrow(1, 0, c.Cin), w = Wt.prefix({c.Cout, c.Cin / c.groups}), b = Bs.narrow(0, 0, c.Cout);
      if (!nested) {
        x = x.contiguous();
        w = w.contiguous();
        b = b.contiguous();
      }
      Conv2dGeometry g{c.stride, c.stride, c.pad, c.pad, c.dilation, c.dilation, c.groups};
      Tensor y = conv2d(x, w, b, g);
      EXPECT_EQ(y.sizes(), (Shape{c.N, c.Cout, c.Ho(), c.Wo()}));
      expect_close(y, ref::conv2d(to_vector<float>(x), to_vector<float>(w), to_vector<float>(b), c), 1e-4f, "conv2d");
      cpu::set_conv_algorithm(cpu::ConvAlgorithm::automatic);
    }
  }
  EXPECT_THROW(conv2d(random_tensor({1, 3, 5, 5}, 1), random_tensor({4, 2, 3, 3}, 2)), Error);
  EXPECT_THROW(conv2d(random_tensor({1, 3, 2, 2}, 1), random_tensor({4, 3, 3, 3}, 2)), Error);
}

TEST(Ops, Pooling) {
  for (bool nested : {false, true}) {
    Both a = both({2, 3, 7, 6}, 50);
    Tensor x = nested ? a.window : a.contiguous;
    V xv = to_vector<float>(x);
    expect_close(max_pool2d(x, {3, 3, 2, 2, 1, 1}), ref::pool2d(xv, 6, 7, 6, 3, 2, 1, true), 1e-6f, "max");
    expect_close(avg_pool2d(x, {2, 2, 2, 2, 0, 0}), ref::pool2d(xv, 6, 7, 6, 2, 2, 0, false), 1e-5f, "avg");
    V gap(6, 0.f);
    for (int i = 0; i < 6 * 42; ++i) gap[i / 42] += xv[i] / 42.f;
    Tensor g = global_avg_pool2d(x);
    EXPECT_EQ(g.sizes(), (Shape{2, 3}));
    expect_close(g, gap, 1e-5f, "global avg");
  }
  // A NaN anywhere in a window is its maximum (as PyTorch), so it reaches the loss and the
  // non-finite check wherever it sits; the other windows are untouched.
  for (int at : {0, 1}) {
    V xv{1.f, 2.f, 3.f, 4.f};
    xv[size_t(at)] = std::nanf("");
    const V y = to_vector<float>(max_pool2d(from_vector(xv, {1, 1, 1, 4}), {1, 2, 1, 2, 0, 0}));
    ASSERT_EQ(y.size(), 2u);
    EXPECT_TRUE(std::isnan(y[0])) << "NaN at " << at;
    EXPECT_EQ(y[1], 4.f);
  }
}

TEST(Ops, EmbeddingDropoutCat) {
  Tensor W = random_tensor({10, 8}, 60);
  Tensor idx = from_vector(std::vector<int64_t>{3, 0, 9, 3, 5, 1}, {2, 3});
  Tensor e = embedding(idx, W.narrow(1, 0, 5));
  EXPECT_EQ(e.sizes(), (Shape{2, 3, 5}));
  expect_close(e.select(0, 1).select(0, 2), to_vector<float>(W.select(0, 1).narrow(0, 0, 5)), 0.f);
  EXPECT_THROW(embedding(from_vector(std::vector<int64_t>{10}, {1}), W), Error);

  Generator g1(5), g2(5);
  Tensor x = ones({1000});
  V d1 = to_vector<float>(dropout(x, 0.25f, g1)), d2 = to_vector<float>(dropout(x, 0.25f, g2));
  EXPECT_EQ(d1, d2);  // reproducible
  int zeros_seen = 0;
  for (float v : d1) {
    ASSERT_TRUE(v == 0.f || std::fabs(v - 1.f / 0.75f) < 1e-6f);
    zeros_seen += v == 0.f;
  }
  EXPECT_NEAR(zeros_seen, 250, 50);
  EXPECT_TRUE(dropout(x, 0.5f, g1, false).same(x));

  Tensor a = random_tensor({2, 3}, 61), b = random_tensor({2, 2}, 62);
  Tensor c = cat({a, b}, 1);
  EXPECT_EQ(c.sizes(), (Shape{2, 5}));
  expect_close(c.narrow(1, 3, 2).contiguous(), to_vector<float>(b), 0.f);
}

}  // namespace
}  // namespace sn
