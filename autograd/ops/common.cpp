// autograd/ops/common.cpp — shared op helpers.
#include "autograd/ops/common.h"

namespace sn::ops {

void check_defined(const char* op, const Tensor& t, const char* what) {
  SN_CHECK(t.defined(), op, what, " is undefined");
}

void check_f32(const char* op, const Tensor& t, const char* what) {
  check_defined(op, t, what);
  SN_CHECK(t.dtype() == DType::f32, op, what, " must be f32, got ", dtype_name(t.dtype()), " ",
           shape_str(t.sizes()));
}

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (a.defined() && b.defined())
    SN_CHECK(a.device() == b.device(), op, "tensors on different devices: ", a.device().str(),
             " and ", b.device().str());
}

Tensor rows_of(const Tensor& t) {
  const int64_t C = t.dim() == 0 ? 1 : t.size(-1);
  const int64_t R = C == 0 ? 0 : t.numel() / C;
  Tensor d = t.detach();
  if (d.dim() >= 1 && (C <= 1 || d.stride(-1) == 1)) {
    // Rows are evenly spaced when the outer dims collapse to one stride.
    int64_t row_stride = C, expected = -1;
    bool ok = true;
    for (int64_t i = d.dim() - 2; i >= 0; --i) {
      if (d.size(i) == 1) continue;
      if (expected < 0) {
        row_stride = d.stride(i);
        expected = d.stride(i) * d.size(i);
      } else if (d.stride(i) != expected) {
        ok = false;
        break;
      } else {
        expected *= d.size(i);
      }
    }
    if (ok && row_stride >= C) return d.as_strided({R, C}, {row_stride, 1}, d.offset());
  }
  Tensor packed = empty(d.sizes(), d.dtype(), d.device());
  kernels(d).copy(packed, d);
  return packed.view({R, C});
}

GradTarget::GradTarget(BackwardContext& ctx, size_t i, const Shape& sizes, Device device,
                       const std::function<bool(const Tensor&)>& usable, bool may_overwrite)
    : ctx_(ctx), i_(i) {
  if (!ctx.needs(i)) return;
  t_ = ctx.window(i, may_overwrite ? &fresh_ : nullptr);
  if (t_.defined() && usable && !usable(t_)) {
    if (fresh_) kernels(t_).fill(t_, 0.f);  // the buffer is the input's gradient: it must hold zeros
    fresh_ = false;
    t_ = Tensor();
  }
  if (!t_.defined()) {
    t_ = may_overwrite ? empty(sizes, DType::f32, device) : zeros(sizes, DType::f32, device);
    temporary_ = true;
    fresh_ = may_overwrite;
  }
}

void GradTarget::finish() {
  if (temporary_) ctx_.accumulate(i_, std::move(t_));
}

}  // namespace sn::ops
