// autograd/ops/norm.cpp — LayerNorm and RMSNorm over the active prefix; BatchNorm.
//
// Under width nesting the normalised dim of x is the active prefix k of a wider layer, and the
// weight and bias are the windows w.narrow(0, 0, k): statistics cover the prefix only, and the
// affine gradients accumulate into those windows.
#include <cmath>

#include "autograd/ops/common.h"

namespace sn {

using namespace ops;

namespace {

void check_per_feature(const char* op, const Tensor& p, int64_t features, const char* what) {
  if (!p.defined()) return;
  check_f32(op, p, what);
  SN_CHECK(p.dim() == 1 && p.size(0) == features, op, what, " ", shape_str(p.sizes()),
           " does not match ", features, " features");
}

Tensor detached(const Tensor& t) { return t.defined() ? t.detach() : t; }

Tensor norm_impl(const char* name, const Tensor& x, const Tensor& w, const Tensor& b, float eps, bool rms) {
  check_f32(name, x, "input");
  SN_CHECK(x.dim() >= 1, name, "expects at least 1 dim");
  const int64_t D = x.size(-1);
  check_per_feature(name, w, D, "weight");
  check_per_feature(name, b, D, "bias");
  Tensor xr = rows_of(x);
  const int64_t R = xr.size(0);
  Tensor y = empty({R, D}, DType::f32, x.device());
  Tensor mu = empty({R}, DType::f32, x.device()), rstd = empty({R}, DType::f32, x.device());
  kernels(x).layer_norm(y, mu, rstd, xr, detached(w), detached(b), eps, rms);
  Saved sx(xr), sw(w), smu(mu), srs(rstd);
  Shape x_sizes = x.sizes();
  Tensor out = record(name, y, {&x, &w, &b}, [=](BackwardContext& ctx) {
    const Tensor& xv = sx.get(name);
    Tensor dx = ctx.needs(0) ? empty(xv.sizes(), DType::f32, xv.device()) : Tensor();
    GradTarget dw(ctx, 1, {D}, xv.device()), db(ctx, 2, {D}, xv.device());
    kernels(xv).layer_norm_backward(dx, dw.tensor(), db.tensor(), ctx.grad(), xv, smu.get(name),
                                    srs.get(name), sw.get(name), rms);
    dw.finish();
    db.finish();
    if (dx.defined()) ctx.accumulate(0, dx.view(x_sizes));
  });
  return out.view(x.sizes());
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps) {
  return norm_impl("layer_norm", x, w, b, eps, false);
}

Tensor rms_norm(const Tensor& x, const Tensor& w, float eps) {
  return norm_impl("rms_norm", x, w, Tensor(), eps, true);
}

namespace {

// [N, C] is [N, C, 1, 1]; the kernels need contiguous H×W planes.
Tensor as_planes(const Tensor& t) {
  Tensor t4 = t.dim() == 2 ? t.unsqueeze(2).unsqueeze(3) : t;
  if (t4.size(3) > 1 && t4.stride(3) != 1) t4 = t4.contiguous();
  if (t4.size(2) > 1 && t4.stride(2) != t4.size(3)) t4 = t4.contiguous();
  return t4;
}

// BatchNorm, then (relu) the residual add and the ReLU in the same pass.
Tensor batch_norm_impl(const char* name, const Tensor& x_in, const Tensor& w, const Tensor& b,
                       const Tensor& running_mean, const Tensor& running_var, bool training, float momentum,
                       float eps, bool relu, const Tensor& residual_in) {
  check_f32(name, x_in, "input");
  SN_CHECK(x_in.dim() == 4 || x_in.dim() == 2, name, "expects [N, C, H, W] or [N, C], got ",
           shape_str(x_in.sizes()));
  Tensor x4 = as_planes(x_in);
  Tensor residual;
  if (residual_in.defined()) {
    check_f32(name, residual_in, "residual");
    SN_CHECK(residual_in.sizes() == x_in.sizes() && residual_in.device() == x_in.device(), name, "residual ",
             shape_str(residual_in.sizes()), " does not match the input ", shape_str(x_in.sizes()));
    residual = as_planes(residual_in);
  }
  const int64_t C = x4.size(1);
  check_per_feature(name, w, C, "weight");
  check_per_feature(name, b, C, "bias");
  check_per_feature(name, running_mean, C, "running_mean");
  check_per_feature(name, running_var, C, "running_var");
  const Device dev = x4.device();
  Backend& k = kernels(x4);
  Tensor mean = empty({C}, DType::f32, dev), invstd = empty({C}, DType::f32, dev);
  if (training) {
    const int64_t count = x4.size(0) * x4.size(2) * x4.size(3);
    SN_CHECK(count > 1, name, "training needs more than one value per channel, got ",
             shape_str(x_in.sizes()));
    Tensor var = empty({C}, DType::f32, dev);
    k.batch_norm_stats(mean, var, x4.detach());
    k.affine(invstd, var, 1.f, eps);
    k.unary(Unary::sqrt, invstd, invstd);
    k.binary(Binary::div, invstd, ones({C}, DType::f32, dev), invstd);
    if (running_mean.defined() && running_var.defined()) {
      NoGradGuard guard;  // running statistics are buffers, updated in place
      Tensor rm = running_mean.detach(), rv = running_var.detach();
      k.affine(rm, rm, 1.f - momentum, 0.f);
      k.axpy(rm, momentum, mean);
      k.affine(rv, rv, 1.f - momentum, 0.f);
      k.axpy(rv, momentum * float(count) / float(count - 1), var);  // unbiased, as PyTorch
      rm.bump_version();
      rv.bump_version();
    }
  } else {
    SN_CHECK(running_mean.defined() && running_var.defined(), name,
             "eval mode needs running_mean and running_var");
    k.copy(mean, running_mean.detach());
    k.affine(invstd, running_var.detach(), 1.f, eps);
    k.unary(Unary::sqrt, invstd, invstd);
    k.binary(Binary::div, invstd, ones({C}, DType::f32, dev), invstd);
  }
  Tensor y = empty(x4.sizes(), DType::f32, dev);
  if (relu) k.batch_norm_apply_relu(y, x4.detach(), mean, invstd, detached(w), detached(b), detached(residual));
  else k.batch_norm_apply(y, x4.detach(), mean, invstd, detached(w), detached(b));
  // The ReLU's gradient needs only where its output is positive.
  Saved sx(x4), sw(w), smean(mean), sinv(invstd), sy(relu ? y : Tensor());
  Tensor out = record(name, y, {&x4, &w, &b, &residual}, [=](BackwardContext& ctx) {
    const Tensor& xv = sx.get(name);
    Backend& kb = kernels(xv);
    const Tensor g = as_planes(ctx.grad());
    Tensor dx = ctx.needs(0) ? empty(xv.sizes(), DType::f32, xv.device()) : Tensor();
    GradTarget dw(ctx, 1, {C}, xv.device()), db(ctx, 2, {C}, xv.device());
    if (relu) {  // through the ReLU's mask; the masked gradient is also the residual's
      Tensor dres = ctx.needs(3) ? empty(xv.sizes(), DType::f32, xv.device()) : Tensor();
      kb.batch_norm_relu_backward(dx, dw.tensor(), db.tensor(), dres, g, sy.get(name), xv, smean.get(name),
                                  sinv.get(name), sw.get(name), training);
      if (dres.defined()) ctx.accumulate(3, std::move(dres));
    } else {
      kb.batch_norm_backward(dx, dw.tensor(), db.tensor(), g, xv, smean.get(name), sinv.get(name), sw.get(name),
                             training);
    }
    dw.finish();
    db.finish();
    if (dx.defined()) ctx.accumulate(0, std::move(dx));
  });
  return x_in.dim() == 2 ? out.view(x_in.sizes()) : out;
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& running_mean,
                  const Tensor& running_var, bool training, float momentum, float eps) {
  return batch_norm_impl("batch_norm", x, w, b, running_mean, running_var, training, momentum, eps, false,
                         Tensor());
}

Tensor batch_norm_relu(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& running_mean,
                       const Tensor& running_var, bool training, float momentum, float eps,
                       const Tensor& residual) {
  return batch_norm_impl("batch_norm_relu", x, w, b, running_mean, running_var, training, momentum, eps, true,
                         residual);
}

}  // namespace sn
