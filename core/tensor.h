// core/tensor.h — Tensor: sizes, strides (in elements) and an offset over a shared Storage.
//
// Views (narrow, slice, select, transpose, permute, view, expand, as_strided, prefix) share the
// storage and never copy; a view of a tensor that requires grad shares that tensor's GradSlot, so
// gradients written to the view land in the same window of the base's gradient.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/storage.h"

namespace sn {

using Shape = std::vector<int64_t>;

namespace autograd {
class Node;
}
struct GradSlot;

class Tensor {
 public:
  Tensor() = default;

  // Wraps existing storage; no copy. (Most users want the factories in autograd/ops.h.)
  static Tensor from_storage(std::shared_ptr<Storage> storage, Shape sizes, Shape strides,
                             int64_t offset, DType dtype);

  bool defined() const { return impl_ != nullptr; }

  // ---- geometry --------------------------------------------------------------------------
  const Shape& sizes() const;
  const Shape& strides() const;
  int64_t dim() const { return int64_t(sizes().size()); }
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const;
  int64_t offset() const;           // in elements, into the storage
  DType dtype() const;
  Device device() const;
  const std::shared_ptr<Storage>& storage() const;
  bool is_contiguous() const;       // row-major with no gaps
  bool is_non_overlapping() const;  // no two elements share memory
  std::string str() const;          // "Tensor[2, 3] f32 cpu"

  // Pointer to the first element (offset applied); checks T against the dtype.
  template <class T>
  T* data() const {
    SN_CHECK(dtype_of<T>() == dtype(), "Tensor::data", "tensor is ", dtype_name(dtype()),
             ", asked for ", dtype_name(dtype_of<T>()));
    return static_cast<T*>(data_ptr());
  }
  void* data_ptr() const;

  // ---- views: share storage, never copy (core/views.cpp) ---------------------------------
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor t() const;  // 2-D transpose
  Tensor permute(const Shape& order) const;
  Tensor view(Shape sizes) const;  // one size may be -1; fails if strides cannot express it
  Tensor expand(const Shape& sizes) const;  // -1 keeps a size; broadcast dims get stride 0
  Tensor as_strided(Shape sizes, Shape strides, int64_t offset) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  // The nested prefix: the first lengths[i] along dim i at once (-1 keeps the dim whole).
  // W.prefix({k_out, k_in}) == W.narrow(0, 0, k_out).narrow(1, 0, k_in).
  Tensor prefix(const Shape& lengths) const;

  // ---- copies (autograd/ops): differentiable -----------------------------------------------
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;
  Tensor reshape(Shape sizes) const;  // a view when possible, else a copy
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;
  Tensor to(DType dtype) const;
  // Host <-> device copies wait for the transfer, except non_blocking from pinned host memory
  // to the device, which is queued on the device's stream: the source must then not be written
  // until that stream has passed the copy (its memory returns to the pinned cache only then).
  Tensor to(Device device, bool non_blocking = false) const;
  Tensor pin_memory() const;  // a copy in pinned host memory (itself when already pinned)
  bool is_pinned() const;     // lives in page-locked host memory
  // Moves a leaf's data (and its gradient, if any) to `device` in place: every handle to this
  // tensor, e.g. a layer's member and the module's parameter list, sees the new storage.
  void relocate(Device device);
  Tensor detach() const;  // same storage, outside the graph

  // ---- autograd (autograd/engine.cpp) ----------------------------------------------------
  bool requires_grad() const;
  Tensor& set_requires_grad(bool enabled = true);  // only on leaves
  bool is_leaf() const;
  // The gradient accumulated by backward(); for a view, the same window of the base's gradient.
  Tensor grad() const;
  void zero_grad();           // zeroes the gradient buffer if there is one
  void retain_grad() const;   // keep a non-leaf's gradient after backward
  // Back-propagates from this tensor. `gradient` defaults to 1 for a one-element tensor.
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;
  const std::shared_ptr<GradSlot>& grad_slot() const;
  void set_grad_slot(std::shared_ptr<GradSlot> slot) const;

  // ---- in place (autograd/ops/inplace.cpp): not recorded; bump the version ---------------
  Tensor& fill_(float value);
  Tensor& zero_();
  Tensor& copy_(const Tensor& src);  // src broadcast to this tensor's shape
  uint64_t version() const;
  void bump_version() const;

  float item() const;  // the value of a one-element tensor, as float

  bool same(const Tensor& other) const { return impl_ == other.impl_; }
  // No other handle or view shares this tensor's memory (its buffer may be reused).
  bool is_uniquely_owned() const;

 private:
  struct Impl;
  Tensor make_view(Shape sizes, Shape strides, int64_t offset) const;
  std::shared_ptr<Impl> impl_;
};

// Where the gradient of a non-view tensor accumulates. Every view of that tensor points here
// too, so a view's gradient is a window (same sizes, strides, offset) of `grad`.
struct GradSlot {
  std::shared_ptr<autograd::Node> producer;  // the op that made the tensor; null for a leaf
  Tensor grad;                               // leaf: its .grad; else the in-flight gradient
  Tensor retained;                           // a non-leaf's gradient kept by retain_grad()
  Shape sizes, strides;                      // geometry of the owning tensor
  int64_t offset = 0;
  Device device;
  bool retain = false;                       // keep a non-leaf's gradient after backward
  bool leaf() const { return producer == nullptr; }
};

// Row-major strides for sizes.
Shape contiguous_strides(const Shape& sizes);
int64_t numel_of(const Shape& sizes);
// Normalises a possibly negative dim against rank, with a clear error.
int64_t wrap_dim(int64_t dim, int64_t rank, const char* op);
// The shape two shapes broadcast to (numpy rules), or an sn::Error naming both.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace sn
