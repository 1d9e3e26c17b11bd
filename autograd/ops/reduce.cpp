// autograd/ops/reduce.cpp — sums and means over all or some dims, and sum_to.
#include <algorithm>

#include "autograd/ops/common.h"

namespace sn {

using namespace ops;

Tensor sum_to(const Tensor& x, const Shape& sizes) {
  check_f32("sum_to", x, "input");
  SN_CHECK(sizes.size() <= size_t(x.dim()), "sum_to", "cannot sum ", shape_str(x.sizes()), " to ",
           shape_str(sizes));
  Shape keep(size_t(x.dim()), 1);
  size_t lead = size_t(x.dim()) - sizes.size();
  for (size_t i = 0; i < sizes.size(); ++i) {
    SN_CHECK(sizes[i] == x.size(int64_t(lead + i)) || sizes[i] == 1, "sum_to", "cannot sum ",
             shape_str(x.sizes()), " to ", shape_str(sizes));
    keep[lead + i] = sizes[i];
  }
  Tensor out = empty(keep, DType::f32, x.device());
  kernels(x).sum_to(out, x.detach(), false);
  out = out.view(sizes);
  Shape in_sizes = x.sizes();
  return record("sum_to", out, {&x}, [in_sizes](BackwardContext& ctx) {
    Shape keep(in_sizes.size(), 1);
    const Shape& g = ctx.grad().sizes();
    std::copy(g.begin(), g.end(), keep.end() - int64_t(g.size()));
    ctx.accumulate(0, ctx.grad().view(keep).expand(in_sizes));
  });
}

Tensor sum(const Tensor& x, const Shape& dims, bool keepdim) {
  check_f32("sum", x, "input");
  Shape keep = x.sizes();
  std::vector<bool> reduced(size_t(x.dim()), false);
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, x.dim(), "sum");
    SN_CHECK(!reduced[size_t(w)], "sum", "dim ", d, " listed twice in ", shape_str(dims));
    reduced[size_t(w)] = true;
    keep[size_t(w)] = 1;
  }
  Tensor out = sum_to(x, keep);
  if (keepdim) return out;
  Shape squeezed;
  for (int64_t i = 0; i < x.dim(); ++i)
    if (!reduced[size_t(i)]) squeezed.push_back(keep[size_t(i)]);
  return out.view(squeezed);
}

Tensor sum(const Tensor& x) { return sum_to(x, {}); }

Tensor mean(const Tensor& x) {
  SN_CHECK(x.numel() > 0, "mean", "of an empty tensor");
  return sum(x) * (1.f / float(x.numel()));
}

Tensor mean(const Tensor& x, const Shape& dims, bool keepdim) {
  Tensor total = sum(x, dims, keepdim);  // validates dims (range, no repeats)
  const int64_t count = x.numel() / std::max<int64_t>(total.numel(), 1);
  SN_CHECK(x.numel() > 0, "mean", "over an empty dim of ", shape_str(x.sizes()));
  return total * (1.f / float(count));
}

}  // namespace sn
