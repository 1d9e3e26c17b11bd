// autograd/ops/common.h — helpers shared by the op implementations (private).
#pragma once

#include <functional>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "core/grad_mode.h"
#include "kernels/backend.h"

namespace sn::ops {

using autograd::BackwardContext;
using autograd::record;
using autograd::Saved;

inline Backend& kernels(const Tensor& t) { return backend_for(t.device()); }

void check_defined(const char* op, const Tensor& t, const char* what);
void check_f32(const char* op, const Tensor& t, const char* what);
void check_same_device(const char* op, const Tensor& a, const Tensor& b);

// A 2-d [R, C] view of t (C = last dim) with unit inner stride over t's own memory when its
// strides allow it, else a packed copy. The result is detached (kernel input).
Tensor rows_of(const Tensor& t);

// Where a backward kernel accumulates input i's gradient: the input's own gradient window when
// it has one, else a zeroed temporary that finish() adds in.
class GradTarget {
 public:
  // `usable`: whether the kernel can write into a given window (else a temporary is used).
  // `may_overwrite`: the kernel can also overwrite instead of adding (a GEMM with beta = 0);
  // then, where nothing was accumulated yet, the target is left uninitialised and fresh() says
  // so: no zero-fill, no add.
  GradTarget(BackwardContext& ctx, size_t i, const Shape& sizes, Device device,
             const std::function<bool(const Tensor&)>& usable = {}, bool may_overwrite = false);
  const Tensor& tensor() const { return t_; }  // undefined when input i needs no gradient
  // Whether the kernel must overwrite every element of tensor() rather than add to it.
  bool fresh() const { return fresh_; }
  void finish();

 private:
  BackwardContext& ctx_;
  size_t i_;
  Tensor t_;
  bool temporary_ = false, fresh_ = false;
};

}  // namespace sn::ops
