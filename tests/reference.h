// tests/reference.h — naive reference implementations (row-major host vectors) that the
// kernels are checked against. Deliberately the plainest loops.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace sn::ref {

using V = std::vector<float>;

// y[M,N] = a[M,K] b[K,N]
inline V matmul(const V& a, const V& b, int64_t M, int64_t K, int64_t N) {
  V y(size_t(M * N), 0.f);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += double(a[i * K + k]) * b[k * N + j];
      y[i * N + j] = float(s);
    }
  return y;
}

// y[R,O] = x[R,I] w[O,I]^T + b[O]
inline V linear(const V& x, const V& w, const V& b, int64_t R, int64_t I, int64_t O) {
  V y(size_t(R * O));
  for (int64_t r = 0; r < R; ++r)
    for (int64_t o = 0; o < O; ++o) {
      double s = b.empty() ? 0.0 : b[o];
      for (int64_t i = 0; i < I; ++i) s += double(x[r * I + i]) * w[o * I + i];
      y[r * O + o] = float(s);
    }
  return y;
}

inline V softmax(const V& x, int64_t R, int64_t C, bool log) {
  V y(x.size());
  for (int64_t r = 0; r < R; ++r) {
    double m = -1e30, s = 0;
    for (int64_t c = 0; c < C; ++c) m = std::max(m, double(x[r * C + c]));
    for (int64_t c = 0; c < C; ++c) s += std::exp(x[r * C + c] - m);
    for (int64_t c = 0; c < C; ++c) {
      double l = x[r * C + c] - m - std::log(s);
      y[r * C + c] = float(log ? l : std::exp(l));
    }
  }
  return y;
}

inline double cross_entropy_mean(const V& x, const std::vector<int64_t>& t, int64_t R, int64_t C,
                                  int64_t ignore, float smoothing) {
  V lp = softmax(x, R, C, true);
  double total = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < R; ++r) {
    if (t[r] == ignore) continue;
    double row = -(1.0 - smoothing) * lp[r * C + t[r]];
    for (int64_t c = 0; c < C; ++c) row -= smoothing / double(C) * lp[r * C + c];
    total += row;
    ++n;
  }
  return total / double(std::max<int64_t>(n, 1));
}

inline V layer_norm(const V& x, const V& w, const V& b, int64_t R, int64_t D, float eps, bool rms) {
  V y(x.size());
  for (int64_t r = 0; r < R; ++r) {
    double mu = 0, var = 0;
    if (!rms) {
      for (int64_t i = 0; i < D; ++i) mu += x[r * D + i];
      mu /= double(D);
    }
    for (int64_t i = 0; i < D; ++i) var += (x[r * D + i] - mu) * (x[r * D + i] - mu);
    var /= double(D);
    for (int64_t i = 0; i < D; ++i)
      y[r * D + i] = float((x[r * D + i] - mu) / std::sqrt(var + eps) * (w.empty() ? 1.0 : w[i]) +
                           (b.empty() ? 0.0 : b[i]));
  }
  return y;
}

// Batch norm with batch statistics over N, H, W.
inline V batch_norm(const V& x, const V& w, const V& b, int64_t N, int64_t C, int64_t P, float eps) {
  V y(x.size());
  for (int64_t c = 0; c < C; ++c) {
    double mu = 0, var = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t p = 0; p < P; ++p) mu += x[(n * C + c) * P + p];
    mu /= double(N * P);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t p = 0; p < P; ++p) var += std::pow(x[(n * C + c) * P + p] - mu, 2);
    var /= double(N * P);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t p = 0; p < P; ++p)
        y[(n * C + c) * P + p] = float((x[(n * C + c) * P + p] - mu) / std::sqrt(var + eps) * w[c] + b[c]);
  }
  return y;
}

struct Conv {
  int64_t N, Cin, H, W, Cout, KH, KW, stride, pad, dilation, groups;
  int64_t Ho() const { return (H + 2 * pad - dilation * (KH - 1) - 1) / stride + 1; }
  int64_t Wo() const { return (W + 2 * pad - dilation * (KW - 1) - 1) / stride + 1; }
};

inline V conv2d(const V& x, const V& w, const V& b, const Conv& c) {
  const int64_t Ho = c.Ho(), Wo = c.Wo(), cig = c.Cin / c.groups, cog = c.Cout / c.groups;
  V y(size_t(c.N * c.Cout * Ho * Wo));
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t co = 0; co < c.Cout; ++co)
      for (int64_t ho = 0; ho < Ho; ++ho)
        for (int64_t wo = 0; wo < Wo; ++wo) {
          double s = b.empty() ? 0.0 : b[co];
          int64_t grp = co / cog;
          for (int64_t ci = 0; ci < cig; ++ci)
            for (int64_t kh = 0; kh < c.KH; ++kh)
              for (int64_t kw = 0; kw < c.KW; ++kw) {
                int64_t hi = ho * c.stride - c.pad + kh * c.dilation;
                int64_t wi = wo * c.stride - c.pad + kw * c.dilation;
                if (hi < 0 || hi >= c.H || wi < 0 || wi >= c.W) continue;
                s += double(x[((n * c.Cin + grp * cig + ci) * c.H + hi) * c.W + wi]) *
                     w[((co * cig + ci) * c.KH + kh) * c.KW + kw];
              }
          y[((n * c.Cout + co) * Ho + ho) * Wo + wo] = float(s);
        }
  return y;
}

inline V pool2d(const V& x, int64_t NC, int64_t H, int64_t W, int64_t k, int64_t s, int64_t p, bool max) {
  const int64_t Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
  V y(size_t(NC * Ho * Wo));
  for (int64_t q = 0; q < NC; ++q)
    for (int64_t ho = 0; ho < Ho; ++ho)
      for (int64_t wo = 0; wo < Wo; ++wo) {
        double acc = max ? -1e30 : 0.0;
        for (int64_t kh = 0; kh < k; ++kh)
          for (int64_t kw = 0; kw < k; ++kw) {
            int64_t hi = ho * s - p + kh, wi = wo * s - p + kw;
            if (hi < 0 || hi >= H || wi < 0 || wi >= W) continue;
            double v = x[(q * H + hi) * W + wi];
            acc = max ? std::max(acc, v) : acc + v;
          }
        y[(q * Ho + ho) * Wo + wo] = float(max ? acc : acc / double(k * k));
      }
  return y;
}

}  // namespace sn::ref
