// kernels/cpu/norm.cpp — LayerNorm / RMSNorm over rows [R, D], BatchNorm over NCHW channels.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace sn {

using namespace cpu;

namespace {
// Element (r, i) of a [R, D] view with unit inner stride, or 1/0 when undefined.
inline const float* row(const Tensor& t, int64_t r) { return t.data<float>() + r * t.stride(0); }
inline float at1(const Tensor& t, int64_t i, float dflt) {
  return t.defined() ? t.data<float>()[i * t.stride(0)] : dflt;
}

// x [N, C, H, W] with contiguous H×W planes: base pointer and strides read once, outside the
// hot loops; planes(n, c) is the plane of (n, c).
struct Planes {
  float* base;
  int64_t sn, sc;
  explicit Planes(const Tensor& t) : base(static_cast<float*>(t.data_ptr())), sn(t.stride(0)), sc(t.stride(1)) {}
  float* operator()(int64_t n, int64_t c) const { return base + n * sn + c * sc; }
};
// Sum of f(i) over [0, n) with 16 independent float accumulators (the compiler vectorises them),
// combined in double: per plane the float error stays small, across planes double carries it.
template <class F>
double lane_sum(int64_t n, F f) {
  float acc[16] = {0.f};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += f(i + j);
  double s = 0.0;
  for (int j = 0; j < 16; ++j) s += acc[j];
  for (; i < n; ++i) s += f(i);
  return s;
}

void check_nchw(const char* op, const Tensor& x) {
  SN_CHECK(x.dim() == 4 && (x.size(3) <= 1 || x.stride(3) == 1) &&
               (x.size(2) <= 1 || x.stride(2) == x.size(3)),
           op, "expects NCHW with contiguous planes, got sizes ", shape_str(x.sizes()),
           " strides ", shape_str(x.strides()));
}
}  // namespace

void CpuBackend::layer_norm(const Tensor& y, const Tensor& mean, const Tensor& rstd,
                            const Tensor& x, const Tensor& w, const Tensor& b, float eps, bool rms) {
  check_f32("layer_norm", {&y, &mean, &rstd, &x, &w, &b});
  const int64_t R = x.size(0), D = x.size(1);
  parallel_for(R, D * 4, [&](int64_t r) {
    const float* xr = row(x, r);
    float* yr = y.data<float>() + r * y.stride(0);
    float mu = 0.f;
    if (!rms) {
      double s = 0.0;
      for (int64_t i = 0; i < D; ++i) s += xr[i];
      mu = float(s / double(D));
    }
    double ss = 0.0;
    for (int64_t i = 0; i < D; ++i) ss += double(xr[i] - mu) * double(xr[i] - mu);
    float rs = 1.f / std::sqrt(float(ss / double(D)) + eps);
    mean.data<float>()[r * mean.stride(0)] = mu;
    rstd.data<float>()[r * rstd.stride(0)] = rs;
    for (int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - mu) * rs * at1(w, i, 1.f) + at1(b, i, 0.f);
  });
}

void CpuBackend::layer_norm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db,
                                     const Tensor& dy, const Tensor& x, const Tensor& mean,
                                     const Tensor& rstd, const Tensor& w, bool rms) {
  check_f32("layer_norm_backward", {&dx, &dw, &db, &dy, &x, &mean, &rstd, &w});
  const int64_t R = x.size(0), D = x.size(1);
  if (dx.defined()) {
    parallel_for(R, D * 8, [&](int64_t r) {
      const float* xr = row(x, r);
      const float* gr = row(dy, r);
      float* dr = dx.data<float>() + r * dx.stride(0);
      float mu = mean.data<float>()[r * mean.stride(0)], rs = rstd.data<float>()[r * rstd.stride(0)];
      double sum_g = 0.0, sum_gx = 0.0;
      for (int64_t i = 0; i < D; ++i) {
        float g = gr[i] * at1(w, i, 1.f);
        sum_g += g;
        sum_gx += double(g) * double((xr[i] - mu) * rs);
      }
      float mg = rms ? 0.f : float(sum_g / double(D)), mgx = float(sum_gx / double(D));
      for (int64_t i = 0; i < D; ++i) {
        float g = gr[i] * at1(w, i, 1.f);
        dr[i] = rs * (g - mg - (xr[i] - mu) * rs * mgx);
      }
    });
  }
  if (dw.defined() || db.defined()) {
    // Columns split across threads: each owns its dw/db entries, rows summed in order.
    parallel_for(D, R * 2, [&](int64_t i) {
      double sw = 0.0, sb = 0.0;
      for (int64_t r = 0; r < R; ++r) {
        float g = row(dy, r)[i];
        float xhat = (row(x, r)[i] - mean.data<float>()[r * mean.stride(0)]) *
                     rstd.data<float>()[r * rstd.stride(0)];
        sw += double(g) * xhat;
        sb += g;
      }
      if (dw.defined()) dw.data<float>()[i * dw.stride(0)] += float(sw);
      if (db.defined()) db.data<float>()[i * db.stride(0)] += float(sb);
    });
  }
}

void CpuBackend::batch_norm_stats(const Tensor& mean, const Tensor& var, const Tensor& x) {
  check_f32("batch_norm_stats", {&mean, &var, &x});
  check_nchw("batch_norm_stats", x);
  const int64_t N = x.size(0), C = x.size(1), P = x.size(2) * x.size(3);
  const double count = double(N * P);
  const Planes plane(x);
  parallel_for(C, N * P * 2, [&](int64_t c) {
    // One pass over values shifted by a sample of the channel (keeps E[x²]-E[x]² well conditioned).
    const float shift = plane(0, c)[0];
    double s = 0.0, ss = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const float* p = plane(n, c);
      s += lane_sum(P, [&](int64_t i) { return p[i] - shift; });
      ss += lane_sum(P, [&](int64_t i) { return (p[i] - shift) * (p[i] - shift); });
    }
    const double m = s / count;
    mean.data<float>()[c * mean.stride(0)] = float(shift + m);
    var.data<float>()[c * var.stride(0)] = float(std::max(ss / count - m * m, 0.0));
  });
}

void CpuBackend::batch_norm_apply(const Tensor& y, const Tensor& x, const Tensor& mean,
                                  const Tensor& invstd, const Tensor& w, const Tensor& b) {
  check_f32("batch_norm_apply", {&y, &x, &mean, &invstd, &w, &b});
  check_nchw("batch_norm_apply", x);
  check_nchw("batch_norm_apply", y);
  const int64_t N = x.size(0), C = x.size(1), P = x.size(2) * x.size(3);
  std::vector<float> scales(static_cast<size_t>(C)), shifts(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    scales[size_t(c)] = at1(invstd, c, 1.f) * at1(w, c, 1.f);
    shifts[size_t(c)] = at1(b, c, 0.f) - at1(mean, c, 0.f) * scales[size_t(c)];
  }
  const Planes xs(x), ys(y);
  parallel_for(N * C, P, [&](int64_t nc) {
    int64_t n = nc / C, c = nc % C;
    const float scale = scales[size_t(c)], shift = shifts[size_t(c)];
    const float* xp = xs(n, c);
    float* yp = ys(n, c);
    for (int64_t i = 0; i < P; ++i) yp[i] = xp[i] * scale + shift;
  });
}

void CpuBackend::batch_norm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db,
                                     const Tensor& dy, const Tensor& x, const Tensor& mean,
                                     const Tensor& invstd, const Tensor& w, bool training) {
  check_f32("batch_norm_backward", {&dx, &dw, &db, &dy, &x, &mean, &invstd, &w});
  check_nchw("batch_norm_backward", x);
  check_nchw("batch_norm_backward", dy);
  const int64_t N = x.size(0), C = x.size(1), P = x.size(2) * x.size(3);
  const double count = double(N * P);
  const Planes xs(x), dys(dy);
  const Planes dxs = dx.defined() ? Planes(dx) : xs;
  parallel_for(C, N * P * 3, [&](int64_t c) {
    float mu = at1(mean, c, 0.f), is = at1(invstd, c, 1.f), wc = at1(w, c, 1.f);
    double sum_g = 0.0, sum_gx = 0.0;  // sum(dy), sum(dy * xhat)
    for (int64_t n = 0; n < N; ++n) {
      const float* xp = xs(n, c);
      const float* gp = dys(n, c);
      sum_g += lane_sum(P, [&](int64_t i) { return gp[i]; });
      sum_gx += lane_sum(P, [&](int64_t i) { return gp[i] * ((xp[i] - mu) * is); });
    }
    if (dw.defined()) dw.data<float>()[c * dw.stride(0)] += float(sum_gx);
    if (db.defined()) db.data<float>()[c * db.stride(0)] += float(sum_g);
    if (!dx.defined()) return;
    float mg = training ? float(sum_g / count) : 0.f;
    float mgx = training ? float(sum_gx / count) : 0.f;
    for (int64_t n = 0; n < N; ++n) {
      const float* xp = xs(n, c);
      const float* gp = dys(n, c);
      float* dp = dxs(n, c);
      for (int64_t i = 0; i < P; ++i)
        dp[i] = wc * is * (gp[i] - mg - (xp[i] - mu) * is * mgx);
    }
  });
}

}  // namespace sn
