// autograd/ops/softmax.cpp — softmax, log-softmax and the fused cross-entropy loss.
#include "autograd/ops/common.h"

namespace sn {

using namespace ops;

namespace {

// Moves `dim` last (a view), runs the row kernel on [R, C], and moves it back.
Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_f32(name, x, "input");
  SN_CHECK(x.dim() >= 1, name, "expects at least 1 dim");
  const int64_t d = wrap_dim(dim, x.dim(), name), last = x.dim() - 1;
  Tensor xt = x.detach().transpose(d, last);
  Tensor y = empty(xt.sizes(), DType::f32, x.device());  // contiguous in the moved layout
  kernels(x).softmax(rows_of(y), rows_of(xt), log);
  Tensor out = y.transpose(d, last);
  Saved sy(out);
  return record(name, out, {&x}, [sy, d, last, log, name](BackwardContext& ctx) {
    Tensor yv = sy.get(name).transpose(d, last);
    Tensor g = ctx.grad().transpose(d, last);
    Tensor dx = empty(yv.sizes(), DType::f32, yv.device());
    kernels(yv).softmax_backward(rows_of(dx), rows_of(g), rows_of(yv), log);
    ctx.accumulate(0, dx.transpose(d, last));
  });
}

// 1 / max(rows whose target is not ignore_index, 1), as a 0-d tensor computed where the targets
// live: reading them back to the host would make every step wait for a GPU. Targets are class
// indices or ignore_index (the kernel rejects others), so in f32 |t - ignore| is 0 for an ignored
// row and >= 1 otherwise, and 1 - relu(1 - |t - ignore|) is exactly the row's 0/1 indicator.
Tensor mean_scale(const Tensor& target, int64_t ignore_index) {
  Tensor distance = abs(affine(target.to(DType::f32), 1.f, -float(ignore_index)));
  Tensor counted = sum(affine(relu(affine(distance, -1.f, 1.f)), -1.f, 1.f));
  Tensor at_least_one = counted + relu(affine(counted, -1.f, 1.f));  // max(count, 1) for count >= 0
  return div(full({}, 1.f, DType::f32, target.device()), at_least_one);
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction,
                     int64_t ignore_index, float smoothing) {
  check_f32("cross_entropy", logits, "logits");
  check_defined("cross_entropy", target, "target");
  SN_CHECK(logits.dim() == 2 && target.dim() == 1 && target.size(0) == logits.size(0),
           "cross_entropy", "expects logits [N, C] and target [N], got ",
           shape_str(logits.sizes()), " and ", shape_str(target.sizes()));
  check_same_device("cross_entropy", logits, target);
  SN_CHECK(target.dtype() == DType::i64 || target.dtype() == DType::i32, "cross_entropy",
           "target must be i64 or i32, got ", dtype_name(target.dtype()));
  SN_CHECK(smoothing >= 0.f && smoothing < 1.f, "cross_entropy", "label smoothing ", smoothing,
           " outside [0, 1)");
  const int64_t N = logits.size(0);
  Tensor rows = rows_of(logits);
  Tensor loss = empty({N}, DType::f32, logits.device());
  Tensor lse = empty({N}, DType::f32, logits.device());
  Tensor tgt = target.detach();
  kernels(logits).cross_entropy(loss, lse, rows, tgt, ignore_index, smoothing);

  Tensor scale;  // d(result)/d(loss[n]) for a mean, a 0-d tensor beside the loss
  Tensor out = loss;
  if (reduction != Reduction::none) {
    NoGradGuard guard;
    out = sum(loss);
    if (reduction == Reduction::mean) {
      scale = mean_scale(tgt, ignore_index);
      out = out * scale;
    }
  }
  Saved sl(rows), slse(lse), st(tgt);
  return record("cross_entropy", out, {&logits}, [=](BackwardContext& ctx) {
    const Tensor& x = sl.get("cross_entropy");
    Tensor dloss = reduction == Reduction::none ? ctx.grad()
                   : scale.defined()             ? (ctx.grad() * scale).expand({N})
                                                 : ctx.grad().expand({N});
    Tensor dx = empty(x.sizes(), DType::f32, x.device());
    kernels(x).cross_entropy_backward(dx, dloss, x, slse.get("cross_entropy"),
                                      st.get("cross_entropy"), ignore_index, smoothing);
    ctx.accumulate(0, std::move(dx));
  });
}

}  // namespace sn
