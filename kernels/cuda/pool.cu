// kernels/cuda/pool.cu — max and average 2-d pooling over NCHW planes (one thread per output).
#include <cmath>

#include "kernels/cuda/launch.cuh"

namespace sn {
namespace cuda {
namespace {

__device__ __forceinline__ int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

struct PlaneGeom {
  int64_t C, H, W, Ho, Wo;
  int64_t xsn, xsc, ysn, ysc;  // batch and channel strides of the input and output
};

__global__ void max_pool_kernel(float* y, int64_t* argmax, const float* x, PlaneGeom d, Pool2dGeometry g,
                                int64_t total) {
  SN_GRID_STRIDE(j, total) {
    const int64_t wo = j % d.Wo, ho = (j / d.Wo) % d.Ho, nc = j / (d.Wo * d.Ho);
    const int64_t n = nc / d.C, c = nc % d.C;
    const float* xp = x + n * d.xsn + c * d.xsc;
    float best = -INFINITY;
    int64_t where = -1;
    for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
      const int64_t hi = ho * g.stride_h - g.pad_h + kh;
      if (hi < 0 || hi >= d.H) continue;
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        const int64_t wi = wo * g.stride_w - g.pad_w + kw;
        if (wi < 0 || wi >= d.W) continue;
        const float v = xp[hi * d.W + wi];
        if (where < 0 || (!isnan(best) && (v > best || isnan(v)))) {  // a NaN wins, as on the CPU
          best = v;
          where = hi * d.W + wi;
        }
      }
    }
    y[n * d.ysn + c * d.ysc + ho * d.Wo + wo] = best;
    argmax[j] = where;  // dense [N, C, Ho, Wo], as on the CPU
  }
}

// Scatters each output's gradient to the input its window chose. Outputs of non-overlapping
// windows (stride >= kernel) never share an input, so the atomics then add onto zero exactly once.
__global__ void max_pool_backward_kernel(float* dx, const float* dy, const int64_t* argmax, PlaneGeom d,
                                         int64_t total) {
  SN_GRID_STRIDE(j, total) {
    const int64_t p = j % (d.Ho * d.Wo), nc = j / (d.Ho * d.Wo);
    const int64_t n = nc / d.C, c = nc % d.C;
    const int64_t where = argmax[j];
    if (where >= 0) atomicAdd(dx + n * d.xsn + c * d.xsc + where, dy[n * d.ysn + c * d.ysc + p]);
  }
}

__global__ void avg_pool_kernel(float* y, const float* x, PlaneGeom d, Pool2dGeometry g, int64_t total) {
  SN_GRID_STRIDE(j, total) {
    const int64_t wo = j % d.Wo, ho = (j / d.Wo) % d.Ho, nc = j / (d.Wo * d.Ho);
    const int64_t n = nc / d.C, c = nc % d.C;
    const float* xp = x + n * d.xsn + c * d.xsc;
    float s = 0.f;
    for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
      const int64_t hi = ho * g.stride_h - g.pad_h + kh;
      if (hi < 0 || hi >= d.H) continue;
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        const int64_t wi = wo * g.stride_w - g.pad_w + kw;
        if (wi >= 0 && wi < d.W) s += xp[hi * d.W + wi];
      }
    }
    y[n * d.ysn + c * d.ysc + ho * d.Wo + wo] = s / float(g.kernel_h * g.kernel_w);
  }
}

__global__ void avg_pool_backward_kernel(float* dx, const float* dy, PlaneGeom d, Pool2dGeometry g, int64_t total) {
  SN_GRID_STRIDE(j, total) {
    const int64_t wi = j % d.W, hi = (j / d.W) % d.H, nc = j / (d.W * d.H);
    const int64_t n = nc / d.C, c = nc % d.C;
    const float* gp = dy + n * d.ysn + c * d.ysc;
    const int64_t ho0 = imax(0, (hi + g.pad_h - g.kernel_h + g.stride_h) / g.stride_h);
    const int64_t ho1 = imin(d.Ho - 1, (hi + g.pad_h) / g.stride_h);
    const int64_t wo0 = imax(0, (wi + g.pad_w - g.kernel_w + g.stride_w) / g.stride_w);
    const int64_t wo1 = imin(d.Wo - 1, (wi + g.pad_w) / g.stride_w);
    float s = 0.f;
    for (int64_t ho = ho0; ho <= ho1; ++ho)
      for (int64_t wo = wo0; wo <= wo1; ++wo) s += gp[ho * d.Wo + wo];
    dx[n * d.xsn + c * d.xsc + hi * d.W + wi] = s / float(g.kernel_h * g.kernel_w);
  }
}

void check_planes(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts)
    SN_CHECK(t->dim() == 4 && (t->size(3) <= 1 || t->stride(3) == 1) && (t->size(2) <= 1 || t->stride(2) == t->size(3)),
             op, "expects NCHW with contiguous planes, got sizes ", shape_str(t->sizes()), " strides ",
             shape_str(t->strides()));
}

// x is the input-side tensor (x or dx), y the output side (y or dy).
PlaneGeom geom_of(const Tensor& x, const Tensor& y) {
  return {x.size(1), x.size(2), x.size(3), y.size(2), y.size(3), x.stride(0), x.stride(1), y.stride(0), y.stride(1)};
}

}  // namespace
}  // namespace cuda

using namespace cuda;

void CudaBackend::max_pool2d(const Tensor& y, const Tensor& argmax, const Tensor& x, const Pool2dGeometry& g) {
  check_f32("max_pool2d", {&y, &x});
  check_planes("max_pool2d", {&y, &x});
  SN_CHECK(argmax.dtype() == DType::i64 && argmax.is_contiguous() && argmax.numel() == y.numel(), "max_pool2d",
           "argmax must be a contiguous i64 tensor of the output's size");
  const int64_t total = y.numel();
  if (total == 0) return;
  max_pool_kernel<<<blocks_for(total), kThreads, 0, current_stream()>>>(
      fptr(y), static_cast<int64_t*>(argmax.data_ptr()), fptr(x), geom_of(x, y), g, total);
  SN_CUDA_CHECK_LAUNCH();
}

void CudaBackend::max_pool2d_backward(const Tensor& dx, const Tensor& dy, const Tensor& argmax) {
  check_f32("max_pool2d_backward", {&dx, &dy});
  check_planes("max_pool2d_backward", {&dx, &dy});
  SN_CHECK(argmax.dtype() == DType::i64 && argmax.is_contiguous() && argmax.numel() == dy.numel(),
           "max_pool2d_backward", "argmax must be a contiguous i64 tensor of the output's size");
  fill(dx, 0.f);
  const int64_t total = dy.numel();
  if (total == 0) return;
  max_pool_backward_kernel<<<blocks_for(total), kThreads, 0, current_stream()>>>(
      fptr(dx), fptr(dy), static_cast<const int64_t*>(argmax.data_ptr()), geom_of(dx, dy), total);
  SN_CUDA_CHECK_LAUNCH();
}

void CudaBackend::avg_pool2d(const Tensor& y, const Tensor& x, const Pool2dGeometry& g) {
  check_f32("avg_pool2d", {&y, &x});
  check_planes("avg_pool2d", {&y, &x});
  const int64_t total = y.numel();
  if (total == 0) return;
  avg_pool_kernel<<<blocks_for(total), kThreads, 0, current_stream()>>>(fptr(y), fptr(x), geom_of(x, y), g, total);
  SN_CUDA_CHECK_LAUNCH();
}

void CudaBackend::avg_pool2d_backward(const Tensor& dx, const Tensor& dy, const Pool2dGeometry& g) {
  check_f32("avg_pool2d_backward", {&dx, &dy});
  check_planes("avg_pool2d_backward", {&dx, &dy});
  const int64_t total = dx.numel();
  if (total == 0) return;
  avg_pool_backward_kernel<<<blocks_for(total), kThreads, 0, current_stream()>>>(fptr(dx), fptr(dy), geom_of(dx, dy),
                                                                                g, total);
  SN_CUDA_CHECK_LAUNCH();
}

}  // namespace sn
