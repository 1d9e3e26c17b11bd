// core/tensor.cpp — Tensor geometry, accessors and shape helpers.
#include "core/tensor.h"

#include <algorithm>
#include <numeric>

#include "core/tensor_impl.h"

namespace sn {

Shape contiguous_strides(const Shape& sizes) {
  Shape strides(sizes.size());
  int64_t s = 1;
  for (int64_t i = int64_t(sizes.size()) - 1; i >= 0; --i) {
    strides[i] = s;
    s *= std::max<int64_t>(sizes[i], 1);
  }
  return strides;
}

int64_t numel_of(const Shape& sizes) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  return n;
}

int64_t wrap_dim(int64_t dim, int64_t rank, const char* op) {
  int64_t d = dim < 0 ? dim + rank : dim;
  SN_CHECK(d >= 0 && d < rank, op, "dim ", dim, " out of range for a ", rank, "-d tensor");
  return d;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t x = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t y = i < n - b.size() ? 1 : b[i - (n - b.size())];
    SN_CHECK(x == y || x == 1 || y == 1, op, "shapes ", shape_str(a), " and ", shape_str(b),
             " do not broadcast");
    out[i] = x == 1 ? y : x;
  }
  return out;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, Shape sizes, Shape strides,
                            int64_t offset, DType dtype) {
  SN_CHECK(sizes.size() == strides.size(), "Tensor", "sizes ", shape_str(sizes), " and strides ",
           shape_str(strides), " differ in rank");
  int64_t last = offset;
  bool empty = false;
  for (size_t i = 0; i < sizes.size(); ++i) {
    SN_CHECK(sizes[i] >= 0 && strides[i] >= 0, "Tensor", "negative size or stride: sizes ",
             shape_str(sizes), " strides ", shape_str(strides));
    int64_t reach = 0;
    if (sizes[i] == 0) empty = true;  // nothing is addressed
    else if (__builtin_mul_overflow(sizes[i] - 1, strides[i], &reach) || __builtin_add_overflow(last, reach, &last))
      fail("Tensor", "sizes " + shape_str(sizes) + " strides " + shape_str(strides) + " overflow 64-bit offsets");
  }
  if (empty) last = offset - 1;
  uint64_t end_byte = 0;  // one past the last byte addressed (the product may overflow too)
  const bool reach_ok = last < offset || !__builtin_mul_overflow(uint64_t(last) + 1, uint64_t(element_size(dtype)),
                                                                  &end_byte);
  SN_CHECK(offset >= 0 && reach_ok && (last < offset || end_byte <= storage->nbytes()),
           "Tensor", "sizes ", shape_str(sizes), " strides ", shape_str(strides), " offset ",
           offset, " reach past a storage of ", storage->nbytes(), " bytes");
  Tensor t;
  t.impl_ = std::make_shared<Impl>();
  t.impl_->storage = std::move(storage);
  t.impl_->sizes = std::move(sizes);
  t.impl_->strides = std::move(strides);
  t.impl_->offset = offset;
  t.impl_->dtype = dtype;
  return t;
}

#define SN_REQUIRE_DEFINED(op) SN_CHECK(impl_ != nullptr, op, "undefined tensor")

const Shape& Tensor::sizes() const {
  SN_REQUIRE_DEFINED("Tensor::sizes");
  return impl_->sizes;
}
const Shape& Tensor::strides() const {
  SN_REQUIRE_DEFINED("Tensor::strides");
  return impl_->strides;
}
int64_t Tensor::size(int64_t d) const { return sizes()[wrap_dim(d, dim(), "Tensor::size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "Tensor::stride")]; }
int64_t Tensor::numel() const { return numel_of(sizes()); }
int64_t Tensor::offset() const {
  SN_REQUIRE_DEFINED("Tensor::offset");
  return impl_->offset;
}
DType Tensor::dtype() const {
  SN_REQUIRE_DEFINED("Tensor::dtype");
  return impl_->dtype;
}
Device Tensor::device() const {
  SN_REQUIRE_DEFINED("Tensor::device");
  return impl_->storage->device();
}
const std::shared_ptr<Storage>& Tensor::storage() const {
  SN_REQUIRE_DEFINED("Tensor::storage");
  return impl_->storage;
}
void* Tensor::data_ptr() const {
  SN_REQUIRE_DEFINED("Tensor::data_ptr");
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * element_size(impl_->dtype);
}

bool Tensor::is_contiguous() const {
  const Shape& sz = sizes();
  const Shape& st = strides();
  int64_t expected = 1;
  for (int64_t i = int64_t(sz.size()) - 1; i >= 0; --i) {
    if (sz[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= sz[i];
  }
  return true;
}

bool Tensor::is_non_overlapping() const {
  // Sort dims by stride; each stride must clear the extent of all smaller ones.
  std::vector<int64_t> order;
  for (int64_t i = 0; i < dim(); ++i)
    if (size(i) > 1) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return stride(a) < stride(b); });
  int64_t extent = 1;
  for (int64_t d : order) {
    if (stride(d) < extent) return false;
    extent = stride(d) * size(d);
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  return "Tensor" + shape_str(sizes()) + " " + dtype_name(dtype()) + " " + device().str();
}

const std::shared_ptr<GradSlot>& Tensor::grad_slot() const {
  SN_REQUIRE_DEFINED("Tensor::grad_slot");
  return impl_->grad_slot;
}
void Tensor::set_grad_slot(std::shared_ptr<GradSlot> slot) const {
  SN_REQUIRE_DEFINED("Tensor::set_grad_slot");
  impl_->grad_slot = std::move(slot);
}

bool Tensor::is_uniquely_owned() const {
  return impl_ && impl_.use_count() == 1 && impl_->storage.use_count() == 1;
}

uint64_t Tensor::version() const { return storage()->version(); }
void Tensor::bump_version() const { storage()->bump_version(); }

Tensor Tensor::detach() const {
  SN_REQUIRE_DEFINED("Tensor::detach");
  return from_storage(impl_->storage, impl_->sizes, impl_->strides, impl_->offset, impl_->dtype);
}

}  // namespace sn
