// autograd/ops/embedding.cpp — embedding lookup (gradient rows scattered into the weight's
// window) and inverted dropout with counter-based masks.
#include "autograd/ops/common.h"

namespace sn {

using namespace ops;

Tensor embedding(const Tensor& index, const Tensor& weight) {
  check_defined("embedding", index, "index");
  check_f32("embedding", weight, "weight");
  check_same_device("embedding", index, weight);
  SN_CHECK(index.dtype() == DType::i64 || index.dtype() == DType::i32, "embedding",
           "index must be i64 or i32, got ", dtype_name(index.dtype()));
  SN_CHECK(weight.dim() == 2, "embedding", "weight must be [V, D], got ", shape_str(weight.sizes()));
  Tensor flat = index.detach().reshape({-1});
  const int64_t R = flat.size(0), D = weight.size(1);
  Tensor y = empty({R, D}, DType::f32, weight.device());
  kernels(weight).embedding(y, weight.detach(), flat);
  Shape out_shape = index.sizes();
  out_shape.push_back(D);
  Shape w_sizes = weight.sizes();
  Saved saved_index(flat);  // an in-place change of the indices must not redirect the gradient
  Tensor out = record("embedding", y, {&index, &weight}, [saved_index, w_sizes](BackwardContext& ctx) {
    const Tensor& idx = saved_index.get("embedding");
    GradTarget dw(ctx, 1, w_sizes, idx.device());
    kernels(idx).embedding_backward(dw.tensor(), ctx.grad(), idx);
    dw.finish();
  });
  return out.view(out_shape);
}

Tensor dropout(const Tensor& x, float p, Generator& gen, bool training) {
  check_f32("dropout", x, "input");
  SN_CHECK(p >= 0.f && p < 1.f, "dropout", "probability ", p, " outside [0, 1)");
  if (!training || p == 0.f) return x;
  Tensor mask = empty(x.sizes(), DType::f32, x.device());
  uint64_t first = gen.reserve_blocks(uint64_t(mask.numel() + 3) / 4);
  kernels(x).dropout_mask(mask, p, gen, first);
  return mul(x, mask);
}

}  // namespace sn
