// kernels/cpu/elementwise.cpp — copy, fill, random fills, unary/binary ops and their derivatives.
#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/cpu/vec_math.h"
#include "kernels/unary_math.h"

namespace sn {
namespace cpu {

void check_f32(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    SN_CHECK(t->dtype() == DType::f32, op, "expects f32, got ", dtype_name(t->dtype()), " ",
             shape_str(t->sizes()));
    SN_CHECK(t->device().is_cpu(), op, "expects a cpu tensor, got ", t->device().str());
  }
}

void check_rows(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    SN_CHECK(t->dim() == 2 && (t->size(1) <= 1 || t->stride(1) == 1), op,
             "expects rows [R, C] with unit inner stride, got sizes ", shape_str(t->sizes()), " strides ",
             shape_str(t->strides()));
  }
}

namespace {

template <class T>
float load(const T* p) {
  if constexpr (std::is_same_v<T, bf16>) return bf16_to_float(*p);
  else return float(*p);
}

template <class D, class S>
void copy_typed(const Tensor& dst, const Tensor& src) {
  D* d = static_cast<D*>(dst.data_ptr());
  const S* s = static_cast<const S*>(src.data_ptr());
  for_each_row<2>(dst.sizes(), {dst.strides(), src.strides()},
                  [&](Offsets<2> o, Offsets<2> st, int64_t n) {
    D* dp = d + o[0];
    const S* sp = s + o[1];
    if constexpr (std::is_same_v<D, S>) {
      if (st[0] == 1 && st[1] == 1) {  // a contiguous run: one memcpy
        std::memcpy(dp, sp, size_t(n) * sizeof(D));
        return;
      }
    }
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<D, S>) dp[i * st[0]] = sp[i * st[1]];
      else if constexpr (std::is_same_v<D, bf16>) dp[i * st[0]] = float_to_bf16(load(sp + i * st[1]));
      else if constexpr (std::is_same_v<S, bf16>) dp[i * st[0]] = D(bf16_to_float(sp[i * st[1]]));
      else dp[i * st[0]] = D(sp[i * st[1]]);
    }
  });
}

template <class D>
void copy_from(const Tensor& dst, const Tensor& src) {
  switch (src.dtype()) {
    case DType::f32: return copy_typed<D, float>(dst, src);
    case DType::bf16: return copy_typed<D, bf16>(dst, src);
    case DType::i32: return copy_typed<D, int32_t>(dst, src);
    case DType::i64: return copy_typed<D, int64_t>(dst, src);
  }
}

template <class Op>
void unary_loop(const Tensor& out, const Tensor& x, Op op) {
  float* o = out.data<float>();
  const float* a = x.data<float>();
  for_each_row<2>(out.sizes(), {out.strides(), x.strides()}, [&](Offsets<2> off, Offsets<2> st, int64_t n) {
    float* op_ = o + off[0];
    const float* ap = a + off[1];
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) op_[i] = op(ap[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) op_[i * st[0]] = op(ap[i * st[1]]);
    }
  });
}

template <class Op>
void binary_loop(const Tensor& out, const Tensor& x, const Tensor& y, Op op) {
  float* o = out.data<float>();
  const float* a = x.data<float>();
  const float* b = y.data<float>();
  for_each_row<3>(out.sizes(), {out.strides(), x.strides(), y.strides()},
                  [&](Offsets<3> off, Offsets<3> st, int64_t n) {
    float* op_ = o + off[0];
    const float* ap = a + off[1];
    const float* bp = b + off[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
      for (int64_t i = 0; i < n; ++i) op_[i] = op(ap[i], bp[i]);
    } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
      const float bv = *bp;
      for (int64_t i = 0; i < n; ++i) op_[i] = op(ap[i], bv);
    } else {
      for (int64_t i = 0; i < n; ++i) op_[i * st[0]] = op(ap[i * st[1]], bp[i * st[2]]);
    }
  });
}

}  // namespace
}  // namespace cpu

using namespace cpu;

void CpuBackend::copy(const Tensor& dst, const Tensor& src) {
  SN_CHECK(dst.sizes() == src.sizes(), "copy", "sizes differ: ", shape_str(dst.sizes()), " vs ",
           shape_str(src.sizes()));
  SN_CHECK(dst.device().is_cpu() && src.device().is_cpu(), "copy", "cpu kernel got ",
           dst.device().str(), " <- ", src.device().str());
  switch (dst.dtype()) {
    case DType::f32: return copy_from<float>(dst, src);
    case DType::bf16: return copy_from<bf16>(dst, src);
    case DType::i32: return copy_from<int32_t>(dst, src);
    case DType::i64: return copy_from<int64_t>(dst, src);
  }
}

void CpuBackend::fill(const Tensor& dst, float value) {
  auto run = [&](auto* base, auto v) {
    for_each_row<1>(dst.sizes(), {dst.strides()}, [&](Offsets<1> o, Offsets<1> st, int64_t n) {
      for (int64_t i = 0; i < n; ++i) base[o[0] + i * st[0]] = v;
    });
  };
  switch (dst.dtype()) {
    case DType::f32: return run(dst.data<float>(), value);
    case DType::bf16: return run(dst.data<bf16>(), float_to_bf16(value));
    case DType::i32: return run(dst.data<int32_t>(), int32_t(value));
    case DType::i64: return run(dst.data<int64_t>(), int64_t(value));
  }
}

// Random fills index elements in row-major order of dst, so the values do not depend on strides
// or thread count.
void CpuBackend::fill_uniform(const Tensor& dst, const Generator& gen, uint64_t first) {
  check_f32("fill_uniform", {&dst});
  SN_CHECK(dst.is_contiguous(), "fill_uniform", "needs a contiguous tensor");
  float* d = dst.data<float>();
  int64_t n = dst.numel();
  parallel_for((n + 3) / 4, 64, [&](int64_t b) {
    auto w = gen.block(first + uint64_t(b));
    for (int64_t j = 0; j < 4 && 4 * b + j < n; ++j) d[4 * b + j] = u32_to_unit(w[j]);
  });
}

void CpuBackend::fill_normal(const Tensor& dst, const Generator& gen, uint64_t first) {
  check_f32("fill_normal", {&dst});
  SN_CHECK(dst.is_contiguous(), "fill_normal", "needs a contiguous tensor");
  float* d = dst.data<float>();
  int64_t n = dst.numel();
  parallel_for((n + 1) / 2, 64, [&](int64_t p) {
    auto w = gen.block(first + uint64_t(p / 2));
    int j = int(p % 2) * 2;
    float u1 = std::max(u32_to_unit(w[j]), 1e-12f), u2 = u32_to_unit(w[j + 1]);
    float r = std::sqrt(-2.f * std::log(u1));
    d[2 * p] = r * std::cos(6.28318530717958647692f * u2);
    if (2 * p + 1 < n) d[2 * p + 1] = r * std::sin(6.28318530717958647692f * u2);
  });
}

void CpuBackend::dropout_mask(const Tensor& mask, float p, const Generator& gen, uint64_t first) {
  check_f32("dropout_mask", {&mask});
  SN_CHECK(mask.is_contiguous(), "dropout_mask", "needs a contiguous mask");
  float* d = mask.data<float>();
  int64_t n = mask.numel();
  const float scale = 1.f / (1.f - p);
  parallel_for((n + 3) / 4, 64, [&](int64_t b) {
    auto w = gen.block(first + uint64_t(b));
    for (int64_t j = 0; j < 4 && 4 * b + j < n; ++j) d[4 * b + j] = u32_to_unit(w[j]) >= p ? scale : 0.f;
  });
}

namespace {
// f(x) and f'(x) for one op known at compile time: exp and the activations through the
// vectorisable math of vec_math.h, the rest as in unary_math.h (shared with CUDA).
template <Unary Op>
SN_ALWAYS_INLINE inline float cpu_unary_value(float x) {
  if constexpr (Op == Unary::exp) return exp_fast(x);
  else if constexpr (Op == Unary::gelu) return gelu_fast(x);
  else if constexpr (Op == Unary::silu) return x * sigmoid_fast(x);
  else if constexpr (Op == Unary::sigmoid) return sigmoid_fast(x);
  else return unary_value(Op, x);
}
template <Unary Op>
SN_ALWAYS_INLINE inline float cpu_unary_derivative(float x, float y) {
  if constexpr (Op == Unary::gelu) return gelu_derivative_fast(x);
  else if constexpr (Op == Unary::silu) {
    const float s = sigmoid_fast(x);
    return s * (1.f + x * (1.f - s));
  } else return unary_derivative(Op, x, y);
}

// Calls fn(std::integral_constant<Unary, op>): each op gets its own loop, free of a switch per
// element, which the compiler vectorises.
template <class Fn>
void with_unary(Unary op, Fn&& fn) {
  using U = Unary;
  switch (op) {
    case U::neg: return fn(std::integral_constant<U, U::neg>{});
    case U::exp: return fn(std::integral_constant<U, U::exp>{});
    case U::log: return fn(std::integral_constant<U, U::log>{});
    case U::sqrt: return fn(std::integral_constant<U, U::sqrt>{});
    case U::abs: return fn(std::integral_constant<U, U::abs>{});
    case U::relu: return fn(std::integral_constant<U, U::relu>{});
    case U::gelu: return fn(std::integral_constant<U, U::gelu>{});
    case U::gelu_tanh: return fn(std::integral_constant<U, U::gelu_tanh>{});
    case U::silu: return fn(std::integral_constant<U, U::silu>{});
    case U::tanh: return fn(std::integral_constant<U, U::tanh>{});
    case U::sigmoid: return fn(std::integral_constant<U, U::sigmoid>{});
    case U::square: return fn(std::integral_constant<U, U::square>{});
  }
}
}  // namespace

void CpuBackend::unary(Unary op, const Tensor& out, const Tensor& x) {
  check_f32("unary", {&out, &x});
  with_unary(op, [&](auto c) {
    constexpr Unary Op = decltype(c)::value;
    unary_loop(out, x, [](float v) SN_ALWAYS_INLINE { return cpu_unary_value<Op>(v); });
  });
}

void CpuBackend::unary_backward(Unary op, const Tensor& dx, const Tensor& grad, const Tensor& x,
                                const Tensor& y) {
  check_f32("unary_backward", {&dx, &grad, &x, &y});
  // The derivative needs x or y; pass whichever is defined as the second operand.
  const bool uses_y = unary_derivative_uses_y(op);
  const Tensor& v = uses_y ? y : x;
  SN_CHECK(v.defined(), "unary_backward", unary_name(op), " needs ", uses_y ? "its output" : "its input");
  with_unary(op, [&](auto c) {
    constexpr Unary Op = decltype(c)::value;
    if constexpr (Op == Unary::relu)
      binary_loop(dx, grad, v, [](float g, float a) SN_ALWAYS_INLINE { return a > 0.f ? g : 0.f; });
    else if constexpr (unary_derivative_uses_y(Op))
      binary_loop(dx, grad, v, [](float g, float yy) SN_ALWAYS_INLINE { return g * cpu_unary_derivative<Op>(0.f, yy); });
    else
      binary_loop(dx, grad, v, [](float g, float xx) SN_ALWAYS_INLINE { return g * cpu_unary_derivative<Op>(xx, 0.f); });
  });
}

void CpuBackend::binary(Binary op, const Tensor& out, const Tensor& a, const Tensor& b) {
  check_f32("binary", {&out, &a, &b});
  switch (op) {
    case Binary::add: return binary_loop(out, a, b, [](float x, float y) { return x + y; });
    case Binary::sub: return binary_loop(out, a, b, [](float x, float y) { return x - y; });
    case Binary::mul: return binary_loop(out, a, b, [](float x, float y) { return x * y; });
    case Binary::div: return binary_loop(out, a, b, [](float x, float y) { return x / y; });
  }
}

void CpuBackend::affine(const Tensor& out, const Tensor& x, float scale, float shift) {
  check_f32("affine", {&out, &x});
  unary_loop(out, x, [scale, shift](float v) { return v * scale + shift; });
}

void CpuBackend::axpy(const Tensor& y, float alpha, const Tensor& x) {
  check_f32("axpy", {&y, &x});
  SN_CHECK(y.sizes() == x.sizes(), "axpy", "sizes differ: ", shape_str(y.sizes()), " vs ",
           shape_str(x.sizes()));
  binary_loop(y, y, x, [alpha](float a, float b) { return a + alpha * b; });
}

}  // namespace sn
