// autograd/ops/conv.cpp — conv2d (grouped and depthwise), max/avg pooling, global average pool.
#include "autograd/ops/common.h"

namespace sn {

using namespace ops;

namespace {

// x with contiguous H×W planes (what the kernels read); a copy only when needed.
Tensor with_planes(const Tensor& x) {
  bool ok = (x.size(3) <= 1 || x.stride(3) == 1) && (x.size(2) <= 1 || x.stride(2) == x.size(3));
  if (ok) return x.detach();
  Tensor p = empty(x.sizes(), x.dtype(), x.device());
  kernels(x).copy(p, x.detach());
  return p;
}

// Output positions along one dim; 0 when the (padded) input is smaller than the kernel.
int64_t out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation) {
  const int64_t span = in + 2 * pad - dilation * (k - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

void check_nchw(const char* op, const Tensor& x) {
  check_f32(op, x, "input");
  SN_CHECK(x.dim() == 4, op, "expects NCHW input, got ", shape_str(x.sizes()));
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dGeometry& g) {
  check_nchw("conv2d", x);
  check_f32("conv2d", w, "weight");
  check_same_device("conv2d", x, w);
  SN_CHECK(g.groups >= 1 && g.stride_h >= 1 && g.stride_w >= 1 && g.dilation_h >= 1 &&
               g.dilation_w >= 1 && g.pad_h >= 0 && g.pad_w >= 0,
           "conv2d", "invalid geometry: stride ", g.stride_h, "x", g.stride_w, ", padding ",
           g.pad_h, "x", g.pad_w, ", dilation ", g.dilation_h, "x", g.dilation_w, ", groups ", g.groups);
  SN_CHECK(w.dim() == 4 && x.size(1) == w.size(1) * g.groups && w.size(0) % g.groups == 0,
           "conv2d", "input ", shape_str(x.sizes()), " does not match weight ",
           shape_str(w.sizes()), " with groups=", g.groups,
           " (expects weight [Cout, Cin/groups, KH, KW])");
  if (b.defined()) {
    check_f32("conv2d", b, "bias");
    SN_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "conv2d", "bias ", shape_str(b.sizes()),
             " does not match ", w.size(0), " output channels");
  }
  const int64_t Ho = out_size(x.size(2), w.size(2), g.stride_h, g.pad_h, g.dilation_h);
  const int64_t Wo = out_size(x.size(3), w.size(3), g.stride_w, g.pad_w, g.dilation_w);
  SN_CHECK(Ho > 0 && Wo > 0, "conv2d", "input ", shape_str(x.sizes()), " is smaller than kernel ",
           shape_str(w.sizes()), " with padding ", g.pad_h, "x", g.pad_w);
  Tensor xp = with_planes(x);
  Tensor y = empty({x.size(0), w.size(0), Ho, Wo}, DType::f32, x.device());
  kernels(x).conv2d(y, xp, w.detach(), b.defined() ? b.detach() : b, g);
  Saved sx(xp), sw(w);  // references to existing memory, not copies
  Shape w_sizes = w.sizes();
  return record("conv2d", y, {&x, &w, &b}, [=](BackwardContext& ctx) {
    const Tensor& xv = sx.get("conv2d");
    const Tensor& wv = sw.get("conv2d");
    Tensor dx = ctx.needs(0) ? empty(xv.sizes(), DType::f32, xv.device()) : Tensor();
    // The im2col path writes dW as a matrix: its kernel block must be contiguous.
    auto writable = [depthwise = g.groups > 1 && w_sizes[1] == 1](const Tensor& t) {
      return depthwise || ((t.size(3) <= 1 || t.stride(3) == 1) && (t.size(2) <= 1 || t.stride(2) == t.size(3)) &&
                           (t.size(1) <= 1 || t.stride(1) == t.size(2) * t.size(3)));
    };
    GradTarget dw(ctx, 1, w_sizes, xv.device(), writable), db(ctx, 2, {w_sizes[0]}, xv.device());
    kernels(xv).conv2d_backward(dx, dw.tensor(), db.tensor(), ctx.grad(), xv, wv, g);
    dw.finish();
    db.finish();
    if (dx.defined()) ctx.accumulate(0, std::move(dx));
  });
}

namespace {

Shape pool_shape(const char* op, const Tensor& x, const Pool2dGeometry& g) {
  check_nchw(op, x);
  SN_CHECK(g.kernel_h >= 1 && g.kernel_w >= 1 && g.stride_h >= 1 && g.stride_w >= 1 &&
               g.pad_h >= 0 && g.pad_w >= 0 && 2 * g.pad_h <= g.kernel_h && 2 * g.pad_w <= g.kernel_w,
           op, "invalid geometry: kernel ", g.kernel_h, "x", g.kernel_w, ", stride ", g.stride_h,
           "x", g.stride_w, ", padding ", g.pad_h, "x", g.pad_w,
           " (padding must be at most half the kernel)");
  const int64_t Ho = out_size(x.size(2), g.kernel_h, g.stride_h, g.pad_h, 1);
  const int64_t Wo = out_size(x.size(3), g.kernel_w, g.stride_w, g.pad_w, 1);
  SN_CHECK(Ho > 0 && Wo > 0, op, "input ", shape_str(x.sizes()), " is smaller than the kernel");
  return {x.size(0), x.size(1), Ho, Wo};
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dGeometry& g) {
  Shape shape = pool_shape("max_pool2d", x, g);
  Tensor y = empty(shape, DType::f32, x.device());
  Tensor argmax = empty(shape, DType::i64, x.device());
  kernels(x).max_pool2d(y, argmax, with_planes(x), g);
  Shape x_sizes = x.sizes();
  return record("max_pool2d", y, {&x}, [argmax, x_sizes](BackwardContext& ctx) {
    Tensor dx = empty(x_sizes, DType::f32, argmax.device());
    kernels(dx).max_pool2d_backward(dx, ctx.grad(), argmax);
    ctx.accumulate(0, std::move(dx));
  });
}

Tensor avg_pool2d(const Tensor& x, const Pool2dGeometry& g) {
  Shape shape = pool_shape("avg_pool2d", x, g);
  Tensor y = empty(shape, DType::f32, x.device());
  kernels(x).avg_pool2d(y, with_planes(x), g);
  Shape x_sizes = x.sizes();
  return record("avg_pool2d", y, {&x}, [g, x_sizes](BackwardContext& ctx) {
    Tensor dx = empty(x_sizes, DType::f32, ctx.grad().device());
    kernels(dx).avg_pool2d_backward(dx, ctx.grad(), g);
    ctx.accumulate(0, std::move(dx));
  });
}

Tensor global_avg_pool2d(const Tensor& x) {
  check_nchw("global_avg_pool2d", x);
  return mean(x, {2, 3});
}

}  // namespace sn
