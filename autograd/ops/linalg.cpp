// autograd/ops/linalg.cpp — matmul and linear. Weights are windows of larger parameters: the
// forward GEMM reads them in place (leading dimension = the full row), and backward writes dW
// straight into the window of the parameter's gradient with beta = 1.
#include "autograd/ops/common.h"

namespace sn {

using namespace ops;

namespace {

// Whether BLAS can write a GEMM result into t: each matrix row- or column-major.
bool blas_writable(const Tensor& t) {
  const int64_t r = t.size(-2), c = t.size(-1), sr = t.stride(-2), sc = t.stride(-1);
  return ((c <= 1 || sc == 1) && (r <= 1 || sr >= c)) || ((r <= 1 || sr == 1) && (c <= 1 || sc >= r));
}

// dst (a gradient window, or a temporary) += alpha · a @ b; = where nothing was accumulated yet.
void gemm_into(BackwardContext& ctx, size_t i, const Tensor& a, const Tensor& b, const Shape& sizes,
               float alpha = 1.f) {
  GradTarget target(ctx, i, sizes, a.device(), blas_writable, true);
  if (target.tensor().defined()) kernels(a).gemm(target.tensor(), a, b, alpha, target.fresh() ? 0.f : 1.f);
  target.finish();
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, float alpha) {
  check_f32("matmul", a, "lhs");
  check_f32("matmul", b, "rhs");
  check_same_device("matmul", a, b);
  SN_CHECK((a.dim() == 2 && b.dim() == 2) || (a.dim() == 3 && b.dim() == 3), "matmul",
           "expects 2-d @ 2-d or 3-d @ 3-d, got ", shape_str(a.sizes()), " @ ", shape_str(b.sizes()));
  const bool batched = a.dim() == 3;
  SN_CHECK(a.size(-1) == b.size(-2) && (!batched || a.size(0) == b.size(0)), "matmul", "shapes ",
           shape_str(a.sizes()), " @ ", shape_str(b.sizes()), " do not match");
  Shape shape = batched ? Shape{a.size(0), a.size(1), b.size(2)} : Shape{a.size(0), b.size(1)};
  Tensor out = empty(shape, DType::f32, a.device());
  kernels(a).gemm(out, a.detach(), b.detach(), alpha, 0.f);
  Saved sa(b.requires_grad() ? a : Tensor()), sb(a.requires_grad() ? b : Tensor());
  Shape a_sizes = a.sizes(), b_sizes = b.sizes();
  return record("matmul", out, {&a, &b}, [sa, sb, a_sizes, b_sizes, alpha](BackwardContext& ctx) {
    const Tensor& g = ctx.grad();
    const int64_t r = g.dim() - 2, c = g.dim() - 1;  // the matrix dims
    if (ctx.needs(0)) gemm_into(ctx, 0, g, sb.get("matmul").transpose(r, c), a_sizes, alpha);
    if (ctx.needs(1)) gemm_into(ctx, 1, sa.get("matmul").transpose(r, c), g, b_sizes, alpha);
  });
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_f32("linear", x, "input");
  check_f32("linear", w, "weight");
  check_same_device("linear", x, w);
  SN_CHECK(w.dim() == 2 && x.dim() >= 1 && x.size(-1) == w.size(1), "linear", "input ",
           shape_str(x.sizes()), " does not match weight ", shape_str(w.sizes()),
           " (expects [..., in] and [out, in])");
  const int64_t out_features = w.size(0), in_features = w.size(1);
  if (b.defined()) {
    check_f32("linear", b, "bias");
    SN_CHECK(b.dim() == 1 && b.size(0) == out_features, "linear", "bias ", shape_str(b.sizes()),
             " does not match weight ", shape_str(w.sizes()));
  }
  Tensor x2 = x.reshape({-1, in_features});  // a view for any contiguous-rows input
  const int64_t R = x2.size(0);
  Tensor y2 = empty({R, out_features}, DType::f32, x.device());
  Backend& k = kernels(x);
  float beta = 0.f;
  if (b.defined()) {
    k.copy(y2, b.detach().expand({R, out_features}));
    beta = 1.f;
  }
  k.gemm(y2, x2.detach(), w.detach().t(), 1.f, beta);
  Shape out_shape = x.sizes();
  out_shape.back() = out_features;
  Saved sx(w.requires_grad() ? x2 : Tensor()), sw(x2.requires_grad() ? w : Tensor());
  Tensor y = record("linear", y2, {&x2, &w, &b}, [sx, sw](BackwardContext& ctx) {
    const Tensor& g = ctx.grad();  // [R, out]
    if (ctx.needs(0)) {
      const Tensor& wv = sw.get("linear");
      gemm_into(ctx, 0, g, wv, {g.size(0), wv.size(1)});
    }
    if (ctx.needs(1)) {
      const Tensor& xv = sx.get("linear");
      gemm_into(ctx, 1, g.t(), xv, {g.size(1), xv.size(1)});
    }
    if (ctx.needs(2)) {
      GradTarget db(ctx, 2, {g.size(1)}, g.device());
      kernels(g).sum_to(db.tensor().unsqueeze(0), g, true);
      db.finish();
    }
  });
  return y.view(out_shape);
}

}  // namespace sn
