// kernels/unary_math.h — the elementwise functions and their derivatives, one definition for the
// CPU and the CUDA kernels (compiled as host and device code by nvcc).
#pragma once

#include <math.h>

#include "kernels/backend.h"

#ifdef __CUDACC__
#define SN_HOST_DEVICE __host__ __device__
#else
#define SN_HOST_DEVICE
#endif

namespace sn {

SN_HOST_DEVICE inline float unary_value(Unary op, float x) {
  switch (op) {
    case Unary::neg: return -x;
    case Unary::exp: return expf(x);
    case Unary::log: return logf(x);
    case Unary::sqrt: return sqrtf(x);
    case Unary::abs: return fabsf(x);
    case Unary::relu: return x > 0.f ? x : 0.f;
    case Unary::gelu: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    case Unary::gelu_tanh: {
      const float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.f + tanhf(u));
    }
    case Unary::silu: return x / (1.f + expf(-x));
    case Unary::tanh: return tanhf(x);
    case Unary::sigmoid: return 1.f / (1.f + expf(-x));
    case Unary::square: return x * x;
  }
  return 0.f;
}

// f'(x), given x and y = f(x) (each function reads the one it needs: see unary_derivative_uses_y).
SN_HOST_DEVICE inline float unary_derivative(Unary op, float x, float y) {
  switch (op) {
    case Unary::neg: return -1.f;
    case Unary::exp: return y;
    case Unary::log: return 1.f / x;
    case Unary::sqrt: return 0.5f / y;
    case Unary::abs: return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f);
    case Unary::relu: return x > 0.f ? 1.f : 0.f;
    case Unary::gelu: {
      const float cdf = 0.5f * (1.f + erff(x * 0.70710678118654752f));
      const float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
      return cdf + x * pdf;
    }
    case Unary::gelu_tanh: {
      const float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
      const float t = tanhf(u);
      const float du = 0.79788456080286536f * (1.f + 3.f * 0.044715f * x * x);
      return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * du;
    }
    case Unary::silu: {
      const float s = 1.f / (1.f + expf(-x));
      return s * (1.f + x * (1.f - s));
    }
    case Unary::tanh: return 1.f - y * y;
    case Unary::sigmoid: return y * (1.f - y);
    case Unary::square: return 2.f * x;
  }
  return 0.f;
}

// Whether the derivative is read from the output y (else from the input x).
SN_HOST_DEVICE constexpr bool unary_derivative_uses_y(Unary op) {
  return op == Unary::exp || op == Unary::sqrt || op == Unary::tanh || op == Unary::sigmoid;
}

}  // namespace sn
