// kernels/cpu/norm.cpp — LayerNorm / RMSNorm over rows [R, D], BatchNorm over NCHW channels.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/vec_math.h"

namespace sn {

using namespace cpu;

namespace {
// Element i of a per-channel vector, or `dflt` when it is undefined.
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
void check_nchw(const char* op, const Tensor& x) {
  SN_CHECK(x.dim() == 4 && (x.size(3) <= 1 || x.stride(3) == 1) &&
               (x.size(2) <= 1 || x.stride(2) == x.size(3)),
           op, "expects NCHW with contiguous planes, got sizes ", shape_str(x.sizes()),
           " strides ", shape_str(x.strides()));
}

// A per-feature vector (weight or bias, any stride) as D contiguous floats, or `dflt` everywhere
// when undefined: the row loops then read plain arrays the compiler vectorises.
std::vector<float> feature_vector(const Tensor& t, int64_t D, float dflt) {
  std::vector<float> v(size_t(D), dflt);
  if (t.defined()) {
    const float* p = t.data<float>();
    const int64_t s = t.stride(0);
    for (int64_t i = 0; i < D; ++i) v[size_t(i)] = p[i * s];
  }
  return v;
}

// [R, D] rows with a unit inner stride: base pointer and row stride read once.
struct Rows {
  float* base;
  int64_t stride;
  explicit Rows(const Tensor& t) : base(static_cast<float*>(t.data_ptr())), stride(t.stride(0)) {}
  float* operator[](int64_t r) const { return base + r * stride; }
};
// A [R] vector of per-row statistics.
struct Column {
  float* base;
  int64_t stride;
  explicit Column(const Tensor& t) : base(static_cast<float*>(t.data_ptr())), stride(t.stride(0)) {}
  float& operator[](int64_t r) const { return base[r * stride]; }
};

// Rows per block of the weight/bias gradient: a fixed size (not the thread count), so the
// partial sums, and the result, do not depend on how many threads ran them.
constexpr int64_t kNormRowBlock = 32;
}  // namespace

void CpuBackend::layer_norm(const Tensor& y, const Tensor& mean, const Tensor& rstd,
                            const Tensor& x, const Tensor& w, const Tensor& b, float eps, bool rms) {
  check_f32("layer_norm", {&y, &mean, &rstd, &x, &w, &b});
  check_rows("layer_norm", {&y, &x});
  const int64_t R = x.size(0), D = x.size(1);
  const std::vector<float> wv = feature_vector(w, D, 1.f), bv = feature_vector(b, D, 0.f);
  const Rows xs(x), ys(y);
  const Column mus(mean), rss(rstd);
  parallel_for(R, D * 4, [&](int64_t r) {
    const float* xr = xs[r];
    float* yr = ys[r];
    const float mu = rms ? 0.f : float(lane_sum(D, [&](int64_t i) { return xr[i]; }) / double(D));
    // Two passes (mean, then squares about it): no cancellation for rows far from zero.
    const double ss = lane_sum(D, [&](int64_t i) { return (xr[i] - mu) * (xr[i] - mu); });
    const float rs = 1.f / std::sqrt(float(ss / double(D)) + eps);
    mus[r] = mu;
    rss[r] = rs;
    const float* wp = wv.data();
    const float* bp = bv.data();
    for (int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - mu) * rs * wp[i] + bp[i];
  });
}

void CpuBackend::layer_norm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db,
                                     const Tensor& dy, const Tensor& x, const Tensor& mean,
                                     const Tensor& rstd, const Tensor& w, bool rms) {
  check_f32("layer_norm_backward", {&dx, &dw, &db, &dy, &x, &mean, &rstd, &w});
  check_rows("layer_norm_backward", {&dx, &dy, &x});
  const int64_t R = x.size(0), D = x.size(1);
  const std::vector<float> wv = feature_vector(w, D, 1.f);
  const Rows xs(x), gs(dy);
  const Column mus(mean), rss(rstd);
  if (dx.defined()) {
    const Rows ds(dx);
    parallel_for(R, D * 8, [&](int64_t r) {
      const float* xr = xs[r];
      const float* gr = gs[r];
      const float* wp = wv.data();
      float* dr = ds[r];
      const float mu = mus[r], rs = rss[r];
      const double sum_g = rms ? 0.0 : lane_sum(D, [&](int64_t i) { return gr[i] * wp[i]; });
      const double sum_gx = lane_sum(D, [&](int64_t i) { return gr[i] * wp[i] * ((xr[i] - mu) * rs); });
      const float mg = float(sum_g / double(D)), mgx = float(sum_gx / double(D));
      for (int64_t i = 0; i < D; ++i) dr[i] = rs * (gr[i] * wp[i] - mg - (xr[i] - mu) * rs * mgx);
    });
  }
  if (!dw.defined() && !db.defined()) return;
  // Row blocks in parallel, each summing its rows into its own [D] partials (vectorised along
  // the features); then the blocks are added in order, in double.
  const int64_t blocks = (R + kNormRowBlock - 1) / kNormRowBlock;
  Scratch partial(2 * blocks * D);
  float* pw = partial.data();
  float* pb = pw + blocks * D;
  parallel_for(blocks, kNormRowBlock * D * 4, [&](int64_t k) {
    float* aw = pw + k * D;
    float* ab = pb + k * D;
    std::fill(aw, aw + D, 0.f);
    std::fill(ab, ab + D, 0.f);
    for (int64_t r = k * kNormRowBlock; r < std::min(R, (k + 1) * kNormRowBlock); ++r) {
      const float* xr = xs[r];
      const float* gr = gs[r];
      const float mu = mus[r], rs = rss[r];
      for (int64_t i = 0; i < D; ++i) {
        aw[i] += gr[i] * ((xr[i] - mu) * rs);
        ab[i] += gr[i];
      }
    }
  });
  for (auto [g, p] : {std::pair{&dw, pw}, std::pair{&db, pb}}) {
    if (!g->defined()) continue;
    float* out = g->data<float>();
    const int64_t s = g->stride(0);
    for (int64_t i = 0; i < D; ++i) {
      double sum = 0.0;
      for (int64_t k = 0; k < blocks; ++k) sum += p[k * D + i];
      out[i * s] += float(sum);
    }
  }
}

void CpuBackend::batch_norm_stats(const Tensor& mean, const Tensor& var, const Tensor& x) {
  check_f32("batch_norm_stats", {&mean, &var, &x});
  check_nchw("batch_norm_stats", x);
  const int64_t N = x.size(0), C = x.size(1), P = x.size(2) * x.size(3);
  SN_CHECK(N * P > 0, "batch_norm_stats", "no values per channel in ", shape_str(x.sizes()));
  const double count = double(N * P);
  const Planes plane(x);
  parallel_for(C, N * P * 2, [&](int64_t c) {
    // One pass over values shifted by a sample of the channel (keeps E[x²]-E[x]² well conditioned).
    const float shift = plane(0, c)[0];
    double s = 0.0, ss = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const float* p = plane(n, c);
      lane_sum2(P, [&](int64_t i) { return p[i] - shift; }, [&](int64_t i) { return (p[i] - shift) * (p[i] - shift); },
                s, ss);
    }
    const double m = s / count;
    mean.data<float>()[c * mean.stride(0)] = float(shift + m);
    var.data<float>()[c * var.stride(0)] = float(std::max(ss / count - m * m, 0.0));
  });
}

namespace {

// y = x·scale[c] + shift[c] (+ residual) (then max(·, 0)), plane by plane.
void batch_norm_planes(const Tensor& y, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                       const Tensor& w, const Tensor& b, const Tensor& residual, bool relu) {
  const int64_t N = x.size(0), C = x.size(1), P = x.size(2) * x.size(3);
  std::vector<float> scales(static_cast<size_t>(C)), shifts(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    scales[size_t(c)] = at1(invstd, c, 1.f) * at1(w, c, 1.f);
    shifts[size_t(c)] = at1(b, c, 0.f) - at1(mean, c, 0.f) * scales[size_t(c)];
  }
  const Planes xs(x), ys(y), rs(residual.defined() ? residual : x);
  const bool add = residual.defined();
  parallel_for(N * C, P, [&](int64_t nc) {
    int64_t n = nc / C, c = nc % C;
    const float scale = scales[size_t(c)], shift = shifts[size_t(c)];
    const float* xp = xs(n, c);
    const float* rp = rs(n, c);
    float* yp = ys(n, c);
    // The ReLU as Unary::relu computes it: v > 0 ? v : 0 (NaN gives 0 on every backend).
    if (!relu) {
      for (int64_t i = 0; i < P; ++i) yp[i] = xp[i] * scale + shift;
    } else if (add) {
      for (int64_t i = 0; i < P; ++i) {
        const float v = xp[i] * scale + shift + rp[i];
        yp[i] = v > 0.f ? v : 0.f;
      }
    } else {
      for (int64_t i = 0; i < P; ++i) {
        const float v = xp[i] * scale + shift;
        yp[i] = v > 0.f ? v : 0.f;
      }
    }
  });
}

// Whether a loop over C channels keeps every thread equally busy (the fused backward splits the
// channels; the ReLU's backward it replaces splits the elements).
bool channels_balance(int64_t C) {
  const int64_t threads = omp_get_max_threads();
  return C % threads == 0 || C >= 8 * threads;
}

}  // namespace

void CpuBackend::batch_norm_apply(const Tensor& y, const Tensor& x, const Tensor& mean,
                                  const Tensor& invstd, const Tensor& w, const Tensor& b) {
  check_f32("batch_norm_apply", {&y, &x, &mean, &invstd, &w, &b});
  check_nchw("batch_norm_apply", x);
  check_nchw("batch_norm_apply", y);
  batch_norm_planes(y, x, mean, invstd, w, b, Tensor(), false);
}

void CpuBackend::batch_norm_apply_relu(const Tensor& y, const Tensor& x, const Tensor& mean,
                                       const Tensor& invstd, const Tensor& w, const Tensor& b,
                                       const Tensor& residual) {
  check_f32("batch_norm_apply_relu", {&y, &x, &mean, &invstd, &w, &b, &residual});
  check_nchw("batch_norm_apply_relu", x);
  check_nchw("batch_norm_apply_relu", y);
  if (residual.defined()) {
    check_nchw("batch_norm_apply_relu", residual);
    SN_CHECK(residual.sizes() == x.sizes(), "batch_norm_apply_relu", "residual ", shape_str(residual.sizes()),
             " does not match the input ", shape_str(x.sizes()));
  }
  batch_norm_planes(y, x, mean, invstd, w, b, residual, true);
}

namespace {

// BatchNorm's backward per channel once the sums over its incoming gradient g are known:
// dw[c] += Σ g·xhat, db[c] += Σ g, and dx = w·invstd·(g − mean(g) − xhat·mean(g·xhat)) in training
// (the batch statistics depend on x), w·invstd·g in eval.
struct ChannelBackward {
  const Tensor &dx, &dw, &db, &mean, &invstd, &w;
  Planes xs, dxs;
  int64_t N, P;
  bool training;

  ChannelBackward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& x, const Tensor& mean,
                  const Tensor& invstd, const Tensor& w, bool training)
      : dx(dx), dw(dw), db(db), mean(mean), invstd(invstd), w(w), xs(x), dxs(dx.defined() ? dx : x), N(x.size(0)),
        P(x.size(2) * x.size(3)), training(training) {}

  // g(n): g's plane n of channel c.
  template <class GPlane>
  void finish(int64_t c, double sum_g, double sum_gx, GPlane g) const {
    if (dw.defined()) dw.data<float>()[c * dw.stride(0)] += float(sum_gx);
    if (db.defined()) db.data<float>()[c * db.stride(0)] += float(sum_g);
    if (!dx.defined()) return;
    const double count = double(N * P);
    const float mu = at1(mean, c, 0.f), is = at1(invstd, c, 1.f), wc = at1(w, c, 1.f);
    const float mg = training ? float(sum_g / count) : 0.f;
    const float mgx = training ? float(sum_gx / count) : 0.f;
    // Last plane first: the planes the sums read last are the ones still in cache.
    for (int64_t n = N - 1; n >= 0; --n) {
      const float* gp = g(n);
      const float* xp = xs(n, c);
      float* dp = dxs(n, c);
      for (int64_t i = 0; i < P; ++i) dp[i] = wc * is * (gp[i] - mg - (xp[i] - mu) * is * mgx);
    }
  }
};

}  // namespace

void CpuBackend::batch_norm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db,
                                     const Tensor& dy, const Tensor& x, const Tensor& mean,
                                     const Tensor& invstd, const Tensor& w, bool training) {
  check_f32("batch_norm_backward", {&dx, &dw, &db, &dy, &x, &mean, &invstd, &w});
  check_nchw("batch_norm_backward", x);
  check_nchw("batch_norm_backward", dy);
  if (dx.defined()) check_nchw("batch_norm_backward", dx);
  const int64_t N = x.size(0), C = x.size(1), P = x.size(2) * x.size(3);
  const ChannelBackward grad(dx, dw, db, x, mean, invstd, w, training);
  const Planes xs(x), dys(dy);
  parallel_for(C, N * P * 3, [&](int64_t c) {
    const float mu = at1(mean, c, 0.f), is = at1(invstd, c, 1.f);
    double sum_g = 0.0, sum_gx = 0.0;  // sum(dy), sum(dy * xhat)
    for (int64_t n = 0; n < N; ++n) {
      const float* xp = xs(n, c);
      const float* gp = dys(n, c);
      lane_sum2(P, [&](int64_t i) { return gp[i]; }, [&](int64_t i) { return gp[i] * ((xp[i] - mu) * is); }, sum_g,
                sum_gx);
    }
    grad.finish(c, sum_g, sum_gx, [&](int64_t n) { return dys(n, c); });
  });
}

// The ReLU's mask and BatchNorm's backward in one loop over each channel: the masked gradient is
// written once (to dres, or to a per-thread buffer that stays in cache) and read back for dx.
void CpuBackend::batch_norm_relu_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dres,
                                          const Tensor& dy, const Tensor& y, const Tensor& x, const Tensor& mean,
                                          const Tensor& invstd, const Tensor& w, bool training) {
  check_f32("batch_norm_relu_backward", {&dx, &dw, &db, &dres, &dy, &y, &x, &mean, &invstd, &w});
  for (const Tensor* t : {&dy, &y, &x, &dx, &dres})
    if (t->defined()) {
      check_nchw("batch_norm_relu_backward", *t);
      SN_CHECK(t->sizes() == x.sizes(), "batch_norm_relu_backward", "operand ", shape_str(t->sizes()),
               " does not match the input ", shape_str(x.sizes()));
    }
  const int64_t N = x.size(0), C = x.size(1), P = x.size(2) * x.size(3);
  if (!channels_balance(C))
    return Backend::batch_norm_relu_backward(dx, dw, db, dres, dy, y, x, mean, invstd, w, training);
  const ChannelBackward grad(dx, dw, db, x, mean, invstd, w, training);
  const Planes xs(x), ys(y), dys(dy);
  const Planes dres_s = dres.defined() ? Planes(dres) : xs;
  // Called inside a parallel region, parallel_for runs on this thread alone: one buffer.
  const bool nested = omp_in_parallel();
  const ThreadScratch masked(nested ? 1 : omp_get_max_threads(), dres.defined() ? 0 : N * P);
  parallel_for(C, N * P * 5, [&](int64_t c) {
    float* buffer = masked[nested ? 0 : omp_get_thread_num()];
    auto masked_plane = [&](int64_t n) { return dres.defined() ? dres_s(n, c) : buffer + n * P; };
    const float mu = at1(mean, c, 0.f), is = at1(invstd, c, 1.f);
    double sum_g = 0.0, sum_gx = 0.0;  // sum(g), sum(g * xhat) for the masked gradient g
    for (int64_t n = 0; n < N; ++n) {
      const float* gp = dys(n, c);
      const float* yp = ys(n, c);
      const float* xp = xs(n, c);
      float* mp = masked_plane(n);
      // The mask as unary_backward(relu) applies it, stored as it is summed.
      lane_sum2(
          P,
          [&](int64_t i) {
            const float m = yp[i] > 0.f ? gp[i] : 0.f;
            mp[i] = m;
            return m;
          },
          [&](int64_t i) { return mp[i] * ((xp[i] - mu) * is); }, sum_g, sum_gx);
    }
    grad.finish(c, sum_g, sum_gx, masked_plane);
  });
}

}  // namespace sn
