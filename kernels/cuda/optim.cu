// kernels/cuda/optim.cu — fused SGD / AdamW updates over (possibly windowed) parameters: one pass
// reads p, g and the state once and writes p and the state once.
#include <cmath>

#include "kernels/cuda/launch.cuh"

namespace sn {
namespace cuda {
namespace {

__global__ void sgd_kernel(float* p, const float* g, float* v, Strided<3> s, int64_t n, float lr, float momentum,
                           float wd, bool nesterov) {
  SN_GRID_STRIDE(i, n) {
    int64_t o[3];
    if (s.contiguous) o[0] = o[1] = o[2] = i;
    else s.offsets(i, o);
    float w = p[o[0]];
    const float d = g[o[1]] + wd * w;
    const float m = momentum * v[o[2]] + d;
    v[o[2]] = m;
    w -= lr * (nesterov ? d + momentum * m : m);
    p[o[0]] = w;
  }
}

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, Strided<4> s, int64_t n, float lr,
                             float b1, float b2, float eps, float wd, float c1, float c2) {
  SN_GRID_STRIDE(i, n) {
    int64_t o[4];
    if (s.contiguous) o[0] = o[1] = o[2] = o[3] = i;
    else s.offsets(i, o);
    const float grad = g[o[1]];
    const float mm = b1 * m[o[2]] + (1.f - b1) * grad;
    const float vv = b2 * v[o[3]] + (1.f - b2) * grad * grad;
    m[o[2]] = mm;
    v[o[3]] = vv;
    const float w = p[o[0]];
    p[o[0]] = w - lr * ((mm / c1) / (sqrtf(vv / c2) + eps) + wd * w);
  }
}

}  // namespace
}  // namespace cuda

using namespace cuda;

void CudaBackend::sgd_step(const Tensor& p, const Tensor& g, const Tensor& v, float lr, float momentum,
                           float weight_decay, bool nesterov) {
  check_f32("sgd_step", {&p, &g, &v});
  SN_CHECK(p.sizes() == g.sizes() && p.sizes() == v.sizes(), "sgd_step", "sizes differ: ", shape_str(p.sizes()),
           ", ", shape_str(g.sizes()), ", ", shape_str(v.sizes()));
  const int64_t n = p.numel();
  if (n == 0) return;
  sgd_kernel<<<blocks_for(n), kThreads, 0, current_stream()>>>(fptr(p), fptr(g), fptr(v),
                                                             strided_of<3>(p.sizes(), {&p, &g, &v}), n, lr, momentum,
                                                             weight_decay, nesterov);
  SN_CUDA_CHECK_LAUNCH();
}

void CudaBackend::adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, float lr,
                             float beta1, float beta2, float eps, float weight_decay, float c1, float c2) {
  check_f32("adamw_step", {&p, &g, &m, &v});
  SN_CHECK(p.sizes() == g.sizes() && p.sizes() == m.sizes() && p.sizes() == v.sizes(), "adamw_step",
           "sizes differ: ", shape_str(p.sizes()), ", ", shape_str(g.sizes()));
  const int64_t n = p.numel();
  if (n == 0) return;
  adamw_kernel<<<blocks_for(n), kThreads, 0, current_stream()>>>(fptr(p), fptr(g), fptr(m), fptr(v),
                                                               strided_of<4>(p.sizes(), {&p, &g, &m, &v}), n, lr,
                                                               beta1, beta2, eps, weight_decay, c1, c2);
  SN_CUDA_CHECK_LAUNCH();
}

}  // namespace sn
