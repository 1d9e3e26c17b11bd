// kernels/cpu/optim.cpp — fused optimizer updates over (possibly windowed) parameters.
#include <cmath>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/cpu/vec_math.h"

namespace sn {

using namespace cpu;

void CpuBackend::sgd_step(const Tensor& p, const Tensor& g, const Tensor& v, float lr, float momentum,
                          float weight_decay, bool nesterov) {
  check_f32("sgd_step", {&p, &g, &v});
  SN_CHECK(p.sizes() == g.sizes() && p.sizes() == v.sizes(), "sgd_step", "sizes differ: ",
           shape_str(p.sizes()), ", ", shape_str(g.sizes()), ", ", shape_str(v.sizes()));
  float* pp = p.data<float>();
  const float* gp = g.data<float>();
  float* vp = v.data<float>();
  auto update = [=](float& w, float& m, float grad) SN_ALWAYS_INLINE {
    const float d = grad + weight_decay * w;
    m = momentum * m + d;
    w -= lr * (nesterov ? d + momentum * m : m);
  };
  for_each_row<3>(p.sizes(), {p.strides(), g.strides(), v.strides()}, [&](Offsets<3> o, Offsets<3> st, int64_t n) {
    float* w = pp + o[0];
    const float* gr = gp + o[1];
    float* m = vp + o[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {  // rows of a window: a loop the compiler vectorises
      for (int64_t i = 0; i < n; ++i) update(w[i], m[i], gr[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) update(w[i * st[0]], m[i * st[2]], gr[i * st[1]]);
    }
  });
}

void CpuBackend::adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, float lr,
                            float beta1, float beta2, float eps, float weight_decay, float c1, float c2) {
  check_f32("adamw_step", {&p, &g, &m, &v});
  SN_CHECK(p.sizes() == g.sizes() && p.sizes() == m.sizes() && p.sizes() == v.sizes(), "adamw_step",
           "sizes differ: ", shape_str(p.sizes()), ", ", shape_str(g.sizes()));
  float* pp = p.data<float>();
  const float* gp = g.data<float>();
  float* mp = m.data<float>();
  float* vp = v.data<float>();
  auto update = [=](float& w, float& mm, float& vv, float grad) SN_ALWAYS_INLINE {
    mm = beta1 * mm + (1.f - beta1) * grad;
    vv = beta2 * vv + (1.f - beta2) * grad * grad;
    w -= lr * ((mm / c1) / (std::sqrt(vv / c2) + eps) + weight_decay * w);
  };
  for_each_row<4>(p.sizes(), {p.strides(), g.strides(), m.strides(), v.strides()},
                  [&](Offsets<4> o, Offsets<4> st, int64_t n) {
    float* w = pp + o[0];
    const float* gr = gp + o[1];
    float* mm = mp + o[2];
    float* vv = vp + o[3];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1) {  // vectorised (sqrt without errno: see CMake)
      for (int64_t i = 0; i < n; ++i) update(w[i], mm[i], vv[i], gr[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) update(w[i * st[0]], mm[i * st[2]], vv[i * st[3]], gr[i * st[1]]);
    }
  });
}

}  // namespace sn
