// core/views.cpp — the view operations: new geometry over the same storage, never a copy.
#include <algorithm>
#include <numeric>

#include "core/grad_mode.h"
#include "core/tensor.h"
#include "core/tensor_impl.h"

namespace sn {

Tensor Tensor::make_view(Shape sizes, Shape strides, int64_t offset) const {
  Tensor v = from_storage(impl_->storage, std::move(sizes), std::move(strides), offset, impl_->dtype);
  // A view made while recording shares its base's gradient slot: its gradient is a window.
  if (impl_->grad_slot && GradMode::is_enabled()) v.impl_->grad_slot = impl_->grad_slot;
  return v;
}

Tensor Tensor::narrow(int64_t dim_, int64_t start, int64_t length) const {
  int64_t d = wrap_dim(dim_, dim(), "narrow");
  // length <= size - start rather than start + length <= size: no signed overflow for any input.
  SN_CHECK(start >= 0 && length >= 0 && start <= size(d) && length <= size(d) - start, "narrow", "window of ",
           length, " from ", start, " outside dim ", d, " of size ", size(d), " (shape ", shape_str(sizes()), ")");
  Shape sz = sizes();
  sz[d] = length;
  return make_view(sz, strides(), offset() + start * stride(d));
}

Tensor Tensor::slice(int64_t dim_, int64_t start, int64_t end, int64_t step) const {
  int64_t d = wrap_dim(dim_, dim(), "slice");
  SN_CHECK(step > 0, "slice", "step must be positive, got ", step);
  int64_t n = size(d);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape sz = sizes();
  Shape st = strides();
  sz[d] = end == start ? 0 : 1 + (end - start - 1) / step;  // no overflow for a huge step
  SN_CHECK(!__builtin_mul_overflow(st[d], step, &st[d]), "slice", "step ", step, " overflows the stride");
  return make_view(sz, st, offset() + start * stride(d));
}

Tensor Tensor::select(int64_t dim_, int64_t index) const {
  int64_t d = wrap_dim(dim_, dim(), "select");
  int64_t n = size(d);
  if (index < 0) index += n;
  SN_CHECK(index >= 0 && index < n, "select", "index ", index, " out of range for dim ", d,
           " of size ", n);
  Shape sz = sizes();
  Shape st = strides();
  int64_t off = offset() + index * st[d];
  sz.erase(sz.begin() + d);
  st.erase(st.begin() + d);
  return make_view(sz, st, off);
}

Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const {
  int64_t a = wrap_dim(dim0, dim(), "transpose");
  int64_t b = wrap_dim(dim1, dim(), "transpose");
  Shape sz = sizes();
  Shape st = strides();
  std::swap(sz[a], sz[b]);
  std::swap(st[a], st[b]);
  return make_view(sz, st, offset());
}

Tensor Tensor::t() const {
  SN_CHECK(dim() == 2, "t", "expects a 2-d tensor, got ", shape_str(sizes()));
  return transpose(0, 1);
}

Tensor Tensor::permute(const Shape& order) const {
  SN_CHECK(int64_t(order.size()) == dim(), "permute", "order has ", order.size(),
           " dims, tensor has ", dim());
  Shape sz(order.size()), st(order.size());
  std::vector<bool> seen(order.size(), false);
  for (size_t i = 0; i < order.size(); ++i) {
    int64_t d = wrap_dim(order[i], dim(), "permute");
    SN_CHECK(!seen[d], "permute", "dim ", d, " repeated in ", shape_str(order));
    seen[d] = true;
    sz[i] = size(d);
    st[i] = stride(d);
  }
  return make_view(sz, st, offset());
}

namespace {

// Resolves one -1 in `sizes` so that the product is numel.
Shape infer_sizes(Shape sizes, int64_t numel, const char* op, const Shape& from) {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == -1) {
      SN_CHECK(infer < 0, op, "only one dim may be -1 in ", shape_str(sizes));
      infer = int64_t(i);
    } else {
      SN_CHECK(sizes[i] >= 0, op, "invalid size in ", shape_str(sizes));
      known *= sizes[i];
    }
  }
  if (infer >= 0) {
    SN_CHECK(known > 0 && numel % known == 0, op, "cannot reshape ", shape_str(from), " into ",
             shape_str(sizes));
    sizes[infer] = numel / known;
  }
  SN_CHECK(numel_of(sizes) == numel, op, "cannot reshape ", shape_str(from), " (", numel,
           " elements) into ", shape_str(sizes));
  return sizes;
}

}  // namespace

// Strides for `new_sizes` over the same memory, if they exist: walk the old dims from the
// innermost, grouping runs that are contiguous with each other; every new dim must fall inside
// one run. Returns an empty optional-like (false) when impossible.
static bool view_strides(const Shape& old_sizes, const Shape& old_strides, const Shape& new_sizes,
                         Shape& new_strides) {
  new_strides.assign(new_sizes.size(), 1);
  if (old_sizes.empty() || numel_of(old_sizes) == 0) {
    new_strides = contiguous_strides(new_sizes);
    return true;
  }
  int64_t new_d = int64_t(new_sizes.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t old_d = int64_t(old_sizes.size()) - 1; old_d >= 0; --old_d) {
    tensor_numel *= old_sizes[old_d];
    // A run ends where the next-outer dim does not continue it.
    bool run_ends = old_d == 0 ||
                    (old_sizes[old_d - 1] != 1 &&
                     old_strides[old_d - 1] != tensor_numel * chunk_base_stride);
    if (run_ends) {
      while (new_d >= 0 && (view_numel < tensor_numel || new_sizes[new_d] == 1)) {
        new_strides[new_d] = view_numel * chunk_base_stride;
        view_numel *= new_sizes[new_d];
        --new_d;
      }
      if (view_numel != tensor_numel) return false;
      if (old_d > 0) {
        chunk_base_stride = old_strides[old_d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return new_d == -1;
}

Tensor Tensor::view(Shape new_sizes) const {
  new_sizes = infer_sizes(std::move(new_sizes), numel(), "view", sizes());
  Shape st;
  SN_CHECK(view_strides(sizes(), strides(), new_sizes, st), "view", "cannot view ",
           shape_str(sizes()), " with strides ", shape_str(strides()), " as ", shape_str(new_sizes),
           " without a copy (use reshape)");
  return make_view(new_sizes, st, offset());
}

Tensor Tensor::expand(const Shape& target) const {
  SN_CHECK(target.size() >= sizes().size(), "expand", "cannot expand ", shape_str(sizes()), " to ",
           shape_str(target));
  size_t lead = target.size() - sizes().size();
  Shape sz(target.size()), st(target.size());
  for (size_t i = 0; i < target.size(); ++i) {
    if (i < lead) {
      SN_CHECK(target[i] >= 0, "expand", "new leading dim cannot be -1 in ", shape_str(target));
      sz[i] = target[i];
      st[i] = 0;
      continue;
    }
    int64_t have = size(int64_t(i - lead));
    int64_t want = target[i] == -1 ? have : target[i];
    SN_CHECK(have == want || have == 1, "expand", "cannot expand ", shape_str(sizes()), " to ",
             shape_str(target));
    sz[i] = want;
    st[i] = have == want ? stride(int64_t(i - lead)) : 0;
  }
  return make_view(sz, st, offset());
}

Tensor Tensor::as_strided(Shape sz, Shape st, int64_t off) const {
  Tensor v = make_view(std::move(sz), std::move(st), off);
  if (v.grad_slot()) {
    // Overlap is only understood as broadcasting (stride 0): gradients are summed over it.
    Shape sz2 = v.sizes(), st2 = v.strides();
    for (size_t i = 0; i < sz2.size(); ++i)
      if (st2[i] == 0) sz2[i] = 1;
    Tensor probe = from_storage(v.storage(), sz2, st2, off, v.dtype());
    SN_CHECK(probe.is_non_overlapping(), "as_strided",
             "a view of a tensor that requires grad may overlap only through stride 0; strides ",
             shape_str(v.strides()), " for sizes ", shape_str(v.sizes()));
    const GradSlot& slot = *v.grad_slot();
    int64_t base_last = slot.offset, view_last = off;
    for (size_t i = 0; i < slot.sizes.size(); ++i) base_last += (slot.sizes[i] - 1) * slot.strides[i];
    for (size_t i = 0; i < sz2.size(); ++i) view_last += (sz2[i] - 1) * st2[i];
    SN_CHECK(off >= slot.offset && (v.numel() == 0 || view_last <= base_last), "as_strided",
             "a view of a tensor that requires grad must stay inside it (offset ", off, ", sizes ",
             shape_str(v.sizes()), ")");
  }
  return v;
}

Tensor Tensor::unsqueeze(int64_t dim_) const {
  int64_t d = wrap_dim(dim_, dim() + 1, "unsqueeze");
  Shape sz = sizes();
  Shape st = strides();
  int64_t s = d < dim() ? sz[d] * st[d] : 1;
  sz.insert(sz.begin() + d, 1);
  st.insert(st.begin() + d, s);
  return make_view(sz, st, offset());
}

Tensor Tensor::squeeze(int64_t dim_) const {
  int64_t d = wrap_dim(dim_, dim(), "squeeze");
  SN_CHECK(size(d) == 1, "squeeze", "dim ", d, " has size ", size(d), ", not 1");
  Shape sz = sizes();
  Shape st = strides();
  sz.erase(sz.begin() + d);
  st.erase(st.begin() + d);
  return make_view(sz, st, offset());
}

Tensor Tensor::prefix(const Shape& lengths) const {
  SN_CHECK(int64_t(lengths.size()) <= dim(), "prefix", "got ", lengths.size(),
           " lengths for a ", dim(), "-d tensor ", shape_str(sizes()));
  Shape sz = sizes();
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (lengths[i] == -1) continue;
    SN_CHECK(lengths[i] >= 0 && lengths[i] <= sz[i], "prefix", "length ", lengths[i],
             " outside dim ", i, " of ", shape_str(sizes()));
    sz[i] = lengths[i];
  }
  return make_view(sz, strides(), offset());
}

}  // namespace sn
