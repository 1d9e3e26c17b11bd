// kernels/cuda/elementwise.cu — unary/binary maps and their derivatives, affine, axpy, and the
// counter-based random fills (same Philox stream as the CPU: identical values on both devices).
#include <cmath>

#include "kernels/cuda/launch.cuh"
#include "kernels/unary_math.h"

namespace sn {
namespace cuda {
namespace {

// ---- maps over 1..3 float operands --------------------------------------------------------
// Dense operands take 16-byte vector accesses when every pointer is aligned and n % 4 == 0.

inline bool aligned16(std::initializer_list<const void*> ps) {
  for (const void* p : ps)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return true;
}

template <class F>
__global__ void map1_dense4(float4* out, const float4* x, int64_t n4, F f) {
  SN_GRID_STRIDE(i, n4) {
    float4 v = x[i];
    out[i] = make_float4(f(v.x), f(v.y), f(v.z), f(v.w));
  }
}
template <class F>
__global__ void map1_dense(float* out, const float* x, int64_t n, F f) {
  SN_GRID_STRIDE(i, n) out[i] = f(x[i]);
}
template <class F>
__global__ void map1_strided(float* out, const float* x, Strided<2> s, int64_t n, F f) {
  SN_GRID_STRIDE(i, n) {
    int64_t o[2];
    s.offsets(i, o);
    out[o[0]] = f(x[o[1]]);
  }
}

template <class F>
__global__ void map2_dense4(float4* out, const float4* a, const float4* b, int64_t n4, F f) {
  SN_GRID_STRIDE(i, n4) {
    float4 u = a[i], v = b[i];
    out[i] = make_float4(f(u.x, v.x), f(u.y, v.y), f(u.z, v.z), f(u.w, v.w));
  }
}
template <class F>
__global__ void map2_dense(float* out, const float* a, const float* b, int64_t n, F f) {
  SN_GRID_STRIDE(i, n) out[i] = f(a[i], b[i]);
}
template <class F>
__global__ void map2_strided(float* out, const float* a, const float* b, Strided<3> s, int64_t n, F f) {
  SN_GRID_STRIDE(i, n) {
    int64_t o[3];
    s.offsets(i, o);
    out[o[0]] = f(a[o[1]], b[o[2]]);
  }
}

// Rows of a 2-d window (every operand dense along its rows, row strides multiples of 4): 16-byte
// accesses, one division per 4 elements. A nested window [R, k] of a wider [R, K] activation.
template <class F>
__global__ void map1_rows4(float* out, int64_t os, const float* x, int64_t xs, int64_t R, int64_t c4, F f) {
  SN_GRID_STRIDE(i, R * c4) {
    const int64_t r = i / c4, j = i % c4;
    const float4 v = reinterpret_cast<const float4*>(x + r * xs)[j];
    reinterpret_cast<float4*>(out + r * os)[j] = make_float4(f(v.x), f(v.y), f(v.z), f(v.w));
  }
}
template <class F>
__global__ void map2_rows4(float* out, int64_t os, const float* a, int64_t as, const float* b, int64_t bs, int64_t R,
                           int64_t c4, F f) {
  SN_GRID_STRIDE(i, R * c4) {
    const int64_t r = i / c4, j = i % c4;
    const float4 u = reinterpret_cast<const float4*>(a + r * as)[j];
    const float4 v = reinterpret_cast<const float4*>(b + r * bs)[j];
    reinterpret_cast<float4*>(out + r * os)[j] = make_float4(f(u.x, v.x), f(u.y, v.y), f(u.z, v.z), f(u.w, v.w));
  }
}

// Whether a collapsed view is [rows, cols] with unit inner stride and 16-byte aligned rows.
template <int N>
bool vector_rows(const Strided<N>& s, std::initializer_list<const void*> ptrs) {
  if (s.dims != 2 || s.sizes[1] % 4 != 0 || !aligned16(ptrs)) return false;
  for (int k = 0; k < N; ++k)
    if (s.strides[k][1] != 1 || s.strides[k][0] % 4 != 0) return false;
  return true;
}

template <class F>
void map1(const Tensor& out, const Tensor& x, F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  Strided<2> s = strided_of<2>(out.sizes(), {&out, &x});
  float* o = fptr(out);
  const float* a = fptr(x);
  if (s.contiguous && n % 4 == 0 && aligned16({o, a})) {
    map1_dense4<<<blocks_for(n / 4), kThreads, 0, current_stream()>>>(
        reinterpret_cast<float4*>(o), reinterpret_cast<const float4*>(a), n / 4, f);
  } else if (s.contiguous) {
    map1_dense<<<blocks_for(n), kThreads, 0, current_stream()>>>(o, a, n, f);
  } else if (vector_rows(s, {o, a})) {
    map1_rows4<<<blocks_for(n / 4), kThreads, 0, current_stream()>>>(o, s.strides[0][0], a, s.strides[1][0],
                                                                    s.sizes[0], s.sizes[1] / 4, f);
  } else {
    map1_strided<<<blocks_for(n), kThreads, 0, current_stream()>>>(o, a, s, n, f);
  }
  SN_CUDA_CHECK_LAUNCH();
}

template <class F>
void map2(const Tensor& out, const Tensor& x, const Tensor& y, F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  Strided<3> s = strided_of<3>(out.sizes(), {&out, &x, &y});
  float* o = fptr(out);
  const float* a = fptr(x);
  const float* b = fptr(y);
  if (s.contiguous && n % 4 == 0 && aligned16({o, a, b})) {
    map2_dense4<<<blocks_for(n / 4), kThreads, 0, current_stream()>>>(
        reinterpret_cast<float4*>(o), reinterpret_cast<const float4*>(a),
        reinterpret_cast<const float4*>(b), n / 4, f);
  } else if (s.contiguous) {
    map2_dense<<<blocks_for(n), kThreads, 0, current_stream()>>>(o, a, b, n, f);
  } else if (vector_rows(s, {o, a, b})) {
    map2_rows4<<<blocks_for(n / 4), kThreads, 0, current_stream()>>>(o, s.strides[0][0], a, s.strides[1][0], b,
                                                                    s.strides[2][0], s.sizes[0], s.sizes[1] / 4, f);
  } else {
    map2_strided<<<blocks_for(n), kThreads, 0, current_stream()>>>(o, a, b, s, n, f);
  }
  SN_CUDA_CHECK_LAUNCH();
}

// ---- the functions: kernels/unary_math.h, shared with the CPU ----------------------------

struct UnaryFn {
  Unary op;
  __device__ float operator()(float x) const { return unary_value(op, x); }
};
struct ReluFn {
  __device__ float operator()(float x) const { return x > 0.f ? x : 0.f; }
};
struct ReluBackwardFn {
  __device__ float operator()(float g, float x) const { return x > 0.f ? g : 0.f; }
};
struct DerivFromY {
  Unary op;
  __device__ float operator()(float g, float y) const { return g * unary_derivative(op, 0.f, y); }
};
struct DerivFromX {
  Unary op;
  __device__ float operator()(float g, float x) const { return g * unary_derivative(op, x, 0.f); }
};
struct BinaryFn {
  Binary op;
  __device__ float operator()(float a, float b) const {
    switch (op) {
      case Binary::add: return a + b;
      case Binary::sub: return a - b;
      case Binary::mul: return a * b;
      case Binary::div: return a / b;
    }
    return 0.f;
  }
};
struct AffineFn {
  float scale, shift;
  __device__ float operator()(float x) const { return x * scale + shift; }
};
struct AxpyFn {
  float alpha;
  __device__ float operator()(float y, float x) const { return y + alpha * x; }
};

// ---- Philox-4x32-10, bit-identical to core/rng.cpp ------------------------------------------

struct Philox {
  uint32_t key0, key1, stream0, stream1;
  __device__ uint4 block(uint64_t index) const {
    uint32_t c0 = uint32_t(index), c1 = uint32_t(index >> 32), c2 = stream0, c3 = stream1;
    uint32_t k0 = key0, k1 = key1;
#pragma unroll
    for (int round = 0; round < 10; ++round) {
      if (round > 0) {
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
      }
      const uint32_t lo0 = 0xD2511F53u * c0, hi0 = __umulhi(0xD2511F53u, c0);
      const uint32_t lo1 = 0xCD9E8D57u * c2, hi1 = __umulhi(0xCD9E8D57u, c2);
      const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
      c0 = n0;
      c1 = lo1;
      c2 = n2;
      c3 = lo0;
    }
    return make_uint4(c0, c1, c2, c3);
  }
};

Philox philox_of(const Generator& gen) {
  const GeneratorState s = gen.state();
  return {uint32_t(s.seed), uint32_t(s.seed >> 32), uint32_t(s.stream), uint32_t(s.stream >> 32)};
}

__device__ __forceinline__ float unit(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }
__device__ __forceinline__ uint32_t word(const uint4& w, int j) {
  return j == 0 ? w.x : j == 1 ? w.y : j == 2 ? w.z : w.w;
}

// One thread per Philox block of 4 words: uniform (mode 0) or dropout mask (mode 1).
__global__ void uniform_kernel(float* d, int64_t n, Philox ph, uint64_t first, int mode, float p,
                               float scale) {
  SN_GRID_STRIDE(b, (n + 3) / 4) {
    const uint4 w = ph.block(first + uint64_t(b));
    for (int j = 0; j < 4 && 4 * b + j < n; ++j) {
      const float u = unit(word(w, j));
      d[4 * b + j] = mode == 0 ? u : (u >= p ? scale : 0.f);
    }
  }
}

// One thread per Box-Muller pair, pair p from words (2(p%2), 2(p%2)+1) of block p/2.
__global__ void normal_kernel(float* d, int64_t n, Philox ph, uint64_t first) {
  SN_GRID_STRIDE(p, (n + 1) / 2) {
    const uint4 w = ph.block(first + uint64_t(p / 2));
    const int j = int(p % 2) * 2;
    const float u1 = fmaxf(unit(word(w, j)), 1e-12f), u2 = unit(word(w, j + 1));
    const float r = sqrtf(-2.f * logf(u1));
    d[2 * p] = r * cosf(6.28318530717958647692f * u2);
    if (2 * p + 1 < n) d[2 * p + 1] = r * sinf(6.28318530717958647692f * u2);
  }
}

}  // namespace
}  // namespace cuda

using namespace cuda;

void CudaBackend::unary(Unary op, const Tensor& out, const Tensor& x) {
  check_f32("unary", {&out, &x});
  if (op == Unary::relu) return map1(out, x, ReluFn{});
  map1(out, x, UnaryFn{op});
}

void CudaBackend::unary_backward(Unary op, const Tensor& dx, const Tensor& grad, const Tensor& x,
                                 const Tensor& y) {
  check_f32("unary_backward", {&dx, &grad, &x, &y});
  const bool uses_y = unary_derivative_uses_y(op);
  const Tensor& v = uses_y ? y : x;
  SN_CHECK(v.defined(), "unary_backward", unary_name(op), " needs ", uses_y ? "its output" : "its input");
  if (op == Unary::relu) return map2(dx, grad, v, ReluBackwardFn{});
  if (uses_y) return map2(dx, grad, v, DerivFromY{op});
  map2(dx, grad, v, DerivFromX{op});
}

void CudaBackend::binary(Binary op, const Tensor& out, const Tensor& a, const Tensor& b) {
  check_f32("binary", {&out, &a, &b});
  map2(out, a, b, BinaryFn{op});
}

void CudaBackend::affine(const Tensor& out, const Tensor& x, float scale, float shift) {
  check_f32("affine", {&out, &x});
  map1(out, x, AffineFn{scale, shift});
}

void CudaBackend::axpy(const Tensor& y, float alpha, const Tensor& x) {
  check_f32("axpy", {&y, &x});
  SN_CHECK(y.sizes() == x.sizes(), "axpy", "sizes differ: ", shape_str(y.sizes()), " vs ",
           shape_str(x.sizes()));
  map2(y, y, x, AxpyFn{alpha});
}

void CudaBackend::fill_uniform(const Tensor& dst, const Generator& gen, uint64_t first) {
  check_f32("fill_uniform", {&dst});
  SN_CHECK(dst.is_contiguous(), "fill_uniform", "needs a contiguous tensor");
  const int64_t n = dst.numel();
  if (n == 0) return;
  uniform_kernel<<<blocks_for((n + 3) / 4), kThreads, 0, current_stream()>>>(fptr(dst), n, philox_of(gen),
                                                                           first, 0, 0.f, 1.f);
  SN_CUDA_CHECK_LAUNCH();
}

void CudaBackend::fill_normal(const Tensor& dst, const Generator& gen, uint64_t first) {
  check_f32("fill_normal", {&dst});
  SN_CHECK(dst.is_contiguous(), "fill_normal", "needs a contiguous tensor");
  const int64_t n = dst.numel();
  if (n == 0) return;
  normal_kernel<<<blocks_for((n + 1) / 2), kThreads, 0, current_stream()>>>(fptr(dst), n, philox_of(gen), first);
  SN_CUDA_CHECK_LAUNCH();
}

void CudaBackend::dropout_mask(const Tensor& mask, float p, const Generator& gen, uint64_t first) {
  check_f32("dropout_mask", {&mask});
  SN_CHECK(mask.is_contiguous(), "dropout_mask", "needs a contiguous mask");
  const int64_t n = mask.numel();
  if (n == 0) return;
  uniform_kernel<<<blocks_for((n + 3) / 4), kThreads, 0, current_stream()>>>(
      fptr(mask), n, philox_of(gen), first, 1, p, 1.f / (1.f - p));
  SN_CUDA_CHECK_LAUNCH();
}

}  // namespace sn
