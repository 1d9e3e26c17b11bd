// autograd/ops/shape.cpp — copies that change layout, dtype or device; cat; in-place writes.
#include <cstring>

#include "autograd/ops/common.h"
#include "core/tensor_impl.h"

namespace sn {

using namespace ops;

Tensor Tensor::clone() const {
  SN_CHECK(defined(), "clone", "undefined tensor");
  Tensor out = empty(sizes(), dtype(), device());
  backend_for(device()).copy(out, detach());
  return record("clone", out, {this}, [](BackwardContext& ctx) { ctx.accumulate(0, ctx.grad()); });
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::reshape(Shape new_sizes) const {
  if (is_contiguous()) return view(std::move(new_sizes));
  try {
    return view(new_sizes);
  } catch (const Error&) {
    return clone().view(std::move(new_sizes));
  }
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  int64_t s = wrap_dim(start, dim(), "flatten"), e = wrap_dim(end, dim(), "flatten");
  SN_CHECK(s <= e, "flatten", "start dim ", start, " after end dim ", end);
  Shape out(sizes().begin(), sizes().begin() + s);
  int64_t merged = 1;
  for (int64_t i = s; i <= e; ++i) merged *= size(i);
  out.push_back(merged);
  out.insert(out.end(), sizes().begin() + e + 1, sizes().end());
  return reshape(out);
}

Tensor Tensor::to(DType target) const {
  SN_CHECK(defined(), "to", "undefined tensor");
  if (target == dtype()) return *this;
  Tensor out = empty(sizes(), target, device());
  backend_for(device()).copy(out, detach());
  return out;  // conversions leave the graph: only f32 carries gradients
}

Tensor Tensor::to(Device target, bool non_blocking) const {
  SN_CHECK(defined(), "to", "undefined tensor");
  if (target == device()) return *this;
  // Transfers go through the accelerator's backend and need a contiguous host side.
  Backend& accel = backend_for(target.is_cpu() ? device() : target);
  Tensor src = device().is_cpu() ? contiguous().detach() : detach();
  Tensor out = empty(sizes(), dtype(), target);
  if (!src.is_contiguous()) src = src.clone().detach();  // device-side packing
  if (non_blocking) accel.copy_non_blocking(out, src);
  else accel.copy(out, src);
  Device from = device();
  return record("to_device", out, {this}, [from](BackwardContext& ctx) {
    ctx.accumulate(0, ctx.grad().to(from));
  });
}

bool Tensor::is_pinned() const { return defined() && storage()->pinned(); }

Tensor Tensor::pin_memory() const {
  SN_CHECK(defined(), "pin_memory", "undefined tensor");
  SN_CHECK(device().is_cpu(), "pin_memory", "only host tensors can be pinned, got ", device().str());
  if (is_pinned()) return *this;
  Tensor out = empty_pinned(sizes(), dtype());
  backend_for(Device::cpu()).copy(out, detach());
  return out;  // like to(): a staging copy, outside the graph
}

void Tensor::relocate(Device target) {
  SN_CHECK(defined(), "relocate", "undefined tensor");
  SN_CHECK(!grad_slot() || !grad_slot()->producer, "relocate", "only leaves can move in place");
  SN_CHECK(!grad_slot() || (grad_slot()->sizes == sizes() && grad_slot()->strides == strides() &&
                            grad_slot()->offset == offset()),
           "relocate", "a view cannot move in place; move the tensor it views");
  if (target == device()) return;
  Tensor moved = detach().to(target);
  Tensor grad_moved = grad_slot() && grad_slot()->grad.defined() ? grad_slot()->grad.detach().to(target) : Tensor();
  impl_->storage = moved.storage();
  impl_->strides = moved.strides();
  impl_->offset = moved.offset();
  if (const auto& slot = grad_slot()) {  // the gradient's geometry follows the tensor's
    slot->strides = moved.strides();
    slot->offset = moved.offset();
    slot->device = target;
    if (grad_moved.defined()) slot->grad = grad_moved;
  }
}

float Tensor::item() const {
  SN_CHECK(defined() && numel() == 1, "item", "expects a one-element tensor, got ",
           defined() ? shape_str(sizes()) : std::string("undefined"));
  return to_vector<float>(*this)[0];
}

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  SN_CHECK(!tensors.empty(), "cat", "no tensors given");
  const Tensor& first = tensors[0];
  int64_t d = wrap_dim(dim, first.dim(), "cat");
  Shape shape = first.sizes();
  shape[size_t(d)] = 0;
  std::vector<const Tensor*> inputs;
  std::vector<int64_t> lengths;
  for (const Tensor& t : tensors) {
    check_f32("cat", t, "input");
    check_same_device("cat", first, t);
    SN_CHECK(t.dim() == first.dim(), "cat", "ranks differ: ", shape_str(first.sizes()), " and ",
             shape_str(t.sizes()));
    for (int64_t i = 0; i < t.dim(); ++i)
      SN_CHECK(i == d || t.size(i) == first.size(i), "cat", "shapes ", shape_str(first.sizes()),
               " and ", shape_str(t.sizes()), " differ outside dim ", d);
    shape[size_t(d)] += t.size(d);
    lengths.push_back(t.size(d));
    inputs.push_back(&t);
  }
  Tensor out = empty(shape, DType::f32, first.device());
  int64_t at = 0;
  for (const Tensor& t : tensors) {
    kernels(t).copy(out.narrow(d, at, t.size(d)), t.detach());
    at += t.size(d);
  }
  return record("cat", out, inputs, [d, lengths](BackwardContext& ctx) {
    int64_t at = 0;
    for (size_t i = 0; i < lengths.size(); ++i) {
      if (ctx.needs(i)) ctx.accumulate(i, ctx.grad().narrow(d, at, lengths[i]));
      at += lengths[i];
    }
  });
}

namespace {
void check_inplace(const char* op, const Tensor& t) {
  SN_CHECK(t.defined(), op, "undefined tensor");
  SN_CHECK(!(GradMode::is_enabled() && t.requires_grad()), op,
           "in-place write to a tensor that requires grad ", shape_str(t.sizes()),
           " while recording; do it under NoGradGuard (as optimizers do)");
}
}  // namespace

Tensor& Tensor::fill_(float value) {
  check_inplace("fill_", *this);
  backend_for(device()).fill(detach(), value);
  bump_version();
  return *this;
}

Tensor& Tensor::zero_() { return fill_(0.f); }

Tensor& Tensor::copy_(const Tensor& src) {
  check_inplace("copy_", *this);
  SN_CHECK(src.defined(), "copy_", "undefined source");
  check_same_device("copy_", *this, src);
  // Several elements sharing one address (an expanded view) would end up with whichever thread
  // wrote last.
  SN_CHECK(is_non_overlapping(), "copy_", "the destination ", shape_str(sizes()), " with strides ",
           shape_str(strides()), " has elements that share memory");
  Tensor from = src.detach().expand(sizes());
  if (from.storage() == storage()) from = from.clone();  // the same memory: copy through a temporary
  backend_for(device()).copy(detach(), from);
  bump_version();
  return *this;
}

}  // namespace sn
