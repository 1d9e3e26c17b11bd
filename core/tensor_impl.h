// core/tensor_impl.h — what a Tensor handle points to (private to the library).
#pragma once

#include "core/tensor.h"

namespace sn {

struct Tensor::Impl {
  std::shared_ptr<Storage> storage;
  Shape sizes;
  Shape strides;
  int64_t offset = 0;
  DType dtype = DType::f32;
  std::shared_ptr<GradSlot> grad_slot;  // set when the tensor requires grad
};

}  // namespace sn
