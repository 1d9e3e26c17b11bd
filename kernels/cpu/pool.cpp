// kernels/cpu/pool.cpp — max and average 2-d pooling over NCHW planes.
#include <cmath>
#include <limits>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace sn {

using namespace cpu;

namespace {
inline float* plane(const Tensor& t, int64_t n, int64_t c) {
  return static_cast<float*>(t.data_ptr()) + n * t.stride(0) + c * t.stride(1);
}
void check_planes(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    SN_CHECK(t->dim() == 4 && (t->size(3) <= 1 || t->stride(3) == 1) &&
                 (t->size(2) <= 1 || t->stride(2) == t->size(3)),
             op, "expects NCHW with contiguous planes, got sizes ", shape_str(t->sizes()),
             " strides ", shape_str(t->strides()));
}
}  // namespace

void CpuBackend::max_pool2d(const Tensor& y, const Tensor& argmax, const Tensor& x,
                            const Pool2dGeometry& g) {
  check_f32("max_pool2d", {&y, &x});
  check_planes("max_pool2d", {&y, &x});
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t Ho = y.size(2), Wo = y.size(3);
  int64_t* am = argmax.data<int64_t>();
  parallel_for(N * C, Ho * Wo * g.kernel_h * g.kernel_w, [&](int64_t nc) {
    int64_t n = nc / C, c = nc % C;
    const float* xp = plane(x, n, c);
    float* yp = plane(y, n, c);
    int64_t* ap = am + nc * Ho * Wo;
    for (int64_t ho = 0; ho < Ho; ++ho)
      for (int64_t wo = 0; wo < Wo; ++wo) {
        float best = -std::numeric_limits<float>::infinity();
        int64_t where = -1;
        for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
          int64_t hi = ho * g.stride_h - g.pad_h + kh;
          if (hi < 0 || hi >= H) continue;
          for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
            int64_t wi = wo * g.stride_w - g.pad_w + kw;
            if (wi < 0 || wi >= W) continue;
            float v = xp[hi * W + wi];
            // A NaN in the window is the maximum (as PyTorch): the first one wins, wherever it is.
            if (where < 0 || (!std::isnan(best) && (v > best || std::isnan(v)))) {
              best = v;
              where = hi * W + wi;
            }
          }
        }
        yp[ho * Wo + wo] = best;
        ap[ho * Wo + wo] = where;
      }
  });
}

void CpuBackend::max_pool2d_backward(const Tensor& dx, const Tensor& dy, const Tensor& argmax) {
  check_f32("max_pool2d_backward", {&dx, &dy});
  check_planes("max_pool2d_backward", {&dx, &dy});
  const int64_t C = dx.size(1), P = dy.size(2) * dy.size(3);
  fill(dx, 0.f);
  const int64_t* am = argmax.data<int64_t>();
  parallel_for(dx.size(0) * C, P, [&](int64_t nc) {
    const float* gp = plane(dy, nc / C, nc % C);
    float* dp = plane(dx, nc / C, nc % C);
    const int64_t* ap = am + nc * P;
    for (int64_t i = 0; i < P; ++i)
      if (ap[i] >= 0) dp[ap[i]] += gp[i];
  });
}

void CpuBackend::avg_pool2d(const Tensor& y, const Tensor& x, const Pool2dGeometry& g) {
  check_f32("avg_pool2d", {&y, &x});
  check_planes("avg_pool2d", {&y, &x});
  const int64_t C = x.size(1), H = x.size(2), W = x.size(3), Ho = y.size(2), Wo = y.size(3);
  const float inv = 1.f / float(g.kernel_h * g.kernel_w);
  parallel_for(x.size(0) * C, Ho * Wo * g.kernel_h * g.kernel_w, [&](int64_t nc) {
    const float* xp = plane(x, nc / C, nc % C);
    float* yp = plane(y, nc / C, nc % C);
    for (int64_t ho = 0; ho < Ho; ++ho)
      for (int64_t wo = 0; wo < Wo; ++wo) {
        float s = 0.f;
        for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
          int64_t hi = ho * g.stride_h - g.pad_h + kh;
          if (hi < 0 || hi >= H) continue;
          for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
            int64_t wi = wo * g.stride_w - g.pad_w + kw;
            if (wi >= 0 && wi < W) s += xp[hi * W + wi];
          }
        }
        yp[ho * Wo + wo] = s * inv;
      }
  });
}

void CpuBackend::avg_pool2d_backward(const Tensor& dx, const Tensor& dy, const Pool2dGeometry& g) {
  check_f32("avg_pool2d_backward", {&dx, &dy});
  check_planes("avg_pool2d_backward", {&dx, &dy});
  const int64_t C = dx.size(1), H = dx.size(2), W = dx.size(3), Ho = dy.size(2), Wo = dy.size(3);
  const float inv = 1.f / float(g.kernel_h * g.kernel_w);
  fill(dx, 0.f);
  parallel_for(dx.size(0) * C, Ho * Wo * g.kernel_h * g.kernel_w, [&](int64_t nc) {
    const float* gp = plane(dy, nc / C, nc % C);
    float* dp = plane(dx, nc / C, nc % C);
    for (int64_t ho = 0; ho < Ho; ++ho)
      for (int64_t wo = 0; wo < Wo; ++wo) {
        float v = gp[ho * Wo + wo] * inv;
        for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
          int64_t hi = ho * g.stride_h - g.pad_h + kh;
          if (hi < 0 || hi >= H) continue;
          for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
            int64_t wi = wo * g.stride_w - g.pad_w + kw;
            if (wi >= 0 && wi < W) dp[hi * W + wi] += v;
          }
        }
      }
  });
}

}  // namespace sn
