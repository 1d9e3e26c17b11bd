// kernels/cpu/softmax.cpp — softmax / log-softmax over rows and the fused cross-entropy.
// Rows are [R, C] views with unit inner stride and any row stride.
#include <cmath>
#include <limits>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/cpu/vec_math.h"

namespace sn {

using namespace cpu;

namespace {

// log(sum(exp(x))) computed stably.
float row_logsumexp(const float* x, int64_t n) {
  float m = lane_max(x, n);
  if (std::isinf(m)) return m;
  const double s = lane_sum(n, [&](int64_t i) { return exp_fast(x[i] - m); });
  return m + float(std::log(s));
}

int64_t target_at(const Tensor& target, int64_t r) {
  if (target.dtype() == DType::i64) return target.data<int64_t>()[r * target.stride(0)];
  return target.data<int32_t>()[r * target.stride(0)];
}

}  // namespace

void CpuBackend::softmax(const Tensor& y, const Tensor& x, bool log) {
  check_f32("softmax", {&y, &x});
  check_rows("softmax", {&x, &y});
  const int64_t C = x.size(1);
  parallel_for(x.size(0), C * 8, [&](int64_t r) {
    const float* xr = x.data<float>() + r * x.stride(0);
    float* yr = y.data<float>() + r * y.stride(0);
    if (log) {
      const float lse = row_logsumexp(xr, C);
      for (int64_t i = 0; i < C; ++i) yr[i] = xr[i] - lse;
      return;
    }
    // exp(x − max) into y, then y / sum(y): one exponential per element.
    const float m = lane_max(xr, C);
    for (int64_t i = 0; i < C; ++i) yr[i] = exp_fast(xr[i] - m);
    const float inv = float(1.0 / lane_sum(C, [&](int64_t i) { return yr[i]; }));
    for (int64_t i = 0; i < C; ++i) yr[i] *= inv;
  });
}

void CpuBackend::softmax_backward(const Tensor& dx, const Tensor& dy, const Tensor& y, bool log) {
  check_f32("softmax_backward", {&dx, &dy, &y});
  check_rows("softmax_backward", {&dx, &dy, &y});
  const int64_t C = y.size(1);
  parallel_for(y.size(0), C * 4, [&](int64_t r) {
    const float* yr = y.data<float>() + r * y.stride(0);
    const float* gr = dy.data<float>() + r * dy.stride(0);
    float* dr = dx.data<float>() + r * dx.stride(0);
    if (log) {  // dx = g - softmax * sum(g)
      const float s = float(lane_sum(C, [&](int64_t i) { return gr[i]; }));
      for (int64_t i = 0; i < C; ++i) dr[i] = gr[i] - exp_fast(yr[i]) * s;
    } else {  // dx = y * (g - sum(g * y))
      const float s = float(lane_sum(C, [&](int64_t i) { return gr[i] * yr[i]; }));
      for (int64_t i = 0; i < C; ++i) dr[i] = yr[i] * (gr[i] - s);
    }
  });
}

void CpuBackend::cross_entropy(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                               const Tensor& target, int64_t ignore_index, float smoothing) {
  check_f32("cross_entropy", {&loss, &lse, &logits});
  check_rows("cross_entropy", {&logits});
  const int64_t N = logits.size(0), C = logits.size(1);
  // Validate targets first so that a bad label is an error, not an out-of-bounds read.
  for (int64_t r = 0; r < N; ++r) {
    int64_t t = target_at(target, r);
    SN_CHECK(t == ignore_index || (t >= 0 && t < C), "cross_entropy", "target ", t, " at row ", r,
             " outside [0, ", C, ")");
  }
  parallel_for(N, C * 8, [&](int64_t r) {
    const float* xr = logits.data<float>() + r * logits.stride(0);
    float l = row_logsumexp(xr, C);
    lse.data<float>()[r * lse.stride(0)] = l;
    int64_t t = target_at(target, r);
    float value = 0.f;
    if (t != ignore_index) {
      value = (1.f - smoothing) * (l - xr[t]);
      if (smoothing > 0.f) {
        float s = 0.f;
        for (int64_t i = 0; i < C; ++i) s += l - xr[i];
        value += smoothing / float(C) * s;
      }
    }
    loss.data<float>()[r * loss.stride(0)] = value;
  });
}

void CpuBackend::cross_entropy_backward(const Tensor& dlogits, const Tensor& dloss,
                                        const Tensor& logits, const Tensor& lse,
                                        const Tensor& target, int64_t ignore_index,
                                        float smoothing) {
  check_f32("cross_entropy_backward", {&dlogits, &dloss, &logits, &lse});
  check_rows("cross_entropy_backward", {&dlogits, &logits});
  const int64_t N = logits.size(0), C = logits.size(1);
  parallel_for(N, C * 4, [&](int64_t r) {
    const float* xr = logits.data<float>() + r * logits.stride(0);
    float* dr = dlogits.data<float>() + r * dlogits.stride(0);
    int64_t t = target_at(target, r);
    if (t == ignore_index) {
      for (int64_t i = 0; i < C; ++i) dr[i] = 0.f;
      return;
    }
    float g = dloss.data<float>()[r * dloss.stride(0)];
    float l = lse.data<float>()[r * lse.stride(0)];
    float uniform = smoothing / float(C);
    for (int64_t i = 0; i < C; ++i) dr[i] = g * (exp_fast(xr[i] - l) - uniform);
    dr[t] -= g * (1.f - smoothing);
  });
}

}  // namespace sn
