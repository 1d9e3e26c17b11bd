// autograd/ops/elementwise.cpp — broadcasting binary ops, affine maps and activations.
#include "autograd/ops/common.h"

namespace sn {

using namespace ops;

namespace {

Tensor binary_op(Binary op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_f32(name, a, "lhs");
  check_f32(name, b, "rhs");
  check_same_device(name, a, b);
  Shape shape = broadcast_shapes(a.sizes(), b.sizes(), name);
  Tensor out = empty(shape, DType::f32, a.device());
  kernels(a).binary(op, out, a.detach().expand(shape), b.detach().expand(shape));
  switch (op) {
    case Binary::add:
      return record("add", out, {&a, &b}, [](BackwardContext& ctx) {
        ctx.accumulate(0, ctx.grad());
        ctx.accumulate(1, ctx.grad());
      });
    case Binary::sub:
      return record("sub", out, {&a, &b}, [](BackwardContext& ctx) {
        ctx.accumulate(0, ctx.grad());
        if (ctx.needs(1)) ctx.accumulate(1, neg(ctx.grad()));
      });
    case Binary::mul: {
      // a's gradient needs b and b's needs a: save only what will be used.
      Saved b_for_a(a.requires_grad() ? b : Tensor()), a_for_b(b.requires_grad() ? a : Tensor());
      return record("mul", out, {&a, &b}, [b_for_a, a_for_b](BackwardContext& ctx) {
        if (ctx.needs(0)) ctx.accumulate(0, mul(ctx.grad(), b_for_a.get("mul")));
        if (ctx.needs(1)) ctx.accumulate(1, mul(ctx.grad(), a_for_b.get("mul")));
      });
    }
    case Binary::div: {
      Saved sb(b), sout(out);
      return record("div", out, {&a, &b}, [sb, sout](BackwardContext& ctx) {
        const Tensor& bv = sb.get("div");
        if (ctx.needs(0)) ctx.accumulate(0, div(ctx.grad(), bv));
        if (ctx.needs(1)) ctx.accumulate(1, neg(div(mul(ctx.grad(), sout.get("div")), bv)));
      });
    }
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary_op(Binary::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op(Binary::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op(Binary::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_op(Binary::div, a, b); }

Tensor affine(const Tensor& x, float scale, float shift) {
  check_f32("affine", x, "input");
  Tensor out = empty(x.sizes(), DType::f32, x.device());
  kernels(x).affine(out, x.detach(), scale, shift);
  return record("affine", out, {&x}, [scale](BackwardContext& ctx) {
    ctx.accumulate(0, affine(ctx.grad(), scale, 0.f));
  });
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, float s) { return affine(a, 1.f, s); }
Tensor operator-(const Tensor& a, float s) { return affine(a, 1.f, -s); }
Tensor operator*(const Tensor& a, float s) { return affine(a, s, 0.f); }
Tensor operator*(float s, const Tensor& a) { return affine(a, s, 0.f); }
Tensor operator/(const Tensor& a, float s) { return affine(a, 1.f / s, 0.f); }
Tensor operator-(const Tensor& a) { return neg(a); }

Tensor unary(Unary op, const Tensor& x) {
  const char* name = unary_name(op);
  check_f32(name, x, "input");
  Tensor out = empty(x.sizes(), DType::f32, x.device());
  kernels(x).unary(op, out, x.detach());
  if (!GradMode::is_enabled() || !x.requires_grad()) return out;
  // The derivative of exp, sqrt, tanh and sigmoid is cheapest from the output.
  const bool from_output = op == Unary::exp || op == Unary::sqrt || op == Unary::tanh || op == Unary::sigmoid;
  Saved sx(from_output ? Tensor() : x), sy(from_output ? out : Tensor());
  return record(name, out, {&x}, [op, sx, sy, name](BackwardContext& ctx) {
    const Tensor& xv = sx.get(name);
    const Tensor& yv = sy.get(name);
    Tensor dx = empty(ctx.grad().sizes(), DType::f32, ctx.grad().device());
    backend_for(dx.device()).unary_backward(op, dx, ctx.grad(), xv, yv);
    ctx.accumulate(0, std::move(dx));
  });
}

Tensor neg(const Tensor& x) { return unary(Unary::neg, x); }
Tensor exp(const Tensor& x) { return unary(Unary::exp, x); }
Tensor log(const Tensor& x) { return unary(Unary::log, x); }
Tensor sqrt(const Tensor& x) { return unary(Unary::sqrt, x); }
Tensor abs(const Tensor& x) { return unary(Unary::abs, x); }
Tensor square(const Tensor& x) { return unary(Unary::square, x); }
Tensor relu(const Tensor& x) { return unary(Unary::relu, x); }
Tensor gelu(const Tensor& x, bool tanh_approximation) {
  return unary(tanh_approximation ? Unary::gelu_tanh : Unary::gelu, x);
}
Tensor silu(const Tensor& x) { return unary(Unary::silu, x); }
Tensor tanh(const Tensor& x) { return unary(Unary::tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary(Unary::sigmoid, x); }

}  // namespace sn
