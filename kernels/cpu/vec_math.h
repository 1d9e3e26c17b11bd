// kernels/cpu/vec_math.h — exp, erf and the activations built on them as straight-line float
// arithmetic (selects instead of branches, bit casts instead of ldexp), so a loop that calls
// them vectorises. libm's expf/erff are scalar calls: they were a quarter of a transformer step.
//
// Accuracy (checked against double precision in Ops.VectorMathMatchesDoublePrecision):
// exp_fast within 1 ulp over its whole range (results below 2^-126 flush to 0), erf_fast within
// 4e-7 absolute. NaN propagates.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>

#include "kernels/backend.h"

// Forces inlining into the calling loop (as a lambda's attribute too): a call left per element
// keeps the loop scalar, and these bodies are large enough that the inliner may decline.
#define SN_ALWAYS_INLINE __attribute__((always_inline))

namespace sn::cpu {

// Sum of f(i) over [0, n) in 16 float lanes (the compiler vectorises them): term i in lane
// i mod 16, the tail too, so zeros past the end change nothing (a softmax row with masked
// positions sums as the shorter row does); the lanes are added as a tree. Returned in double so that callers summing many rows or planes
// carry the total in double. (flatten: f and what it calls are inlined, so the lanes vectorise.)
template <class F>
__attribute__((flatten)) double lane_sum(int64_t n, F f) {
  float acc[16] = {0.f};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += f(i + j);
  for (int j = 0; i + j < n; ++j) acc[j] += f(i + j);  // the tail in its lanes: zeros past the end change nothing
  for (int w = 8; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return double(acc[0]);
}

// lane_sum of f and of g in one pass: the same additions in the same order, so each result equals
// its own lane_sum call, for half the loads when f and g read the same arrays.
template <class F, class G>
__attribute__((flatten)) void lane_sum2(int64_t n, F f, G g, double& sum_f, double& sum_g) {
  float af[16] = {0.f}, ag[16] = {0.f};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) {
      af[j] += f(i + j);
      ag[j] += g(i + j);
    }
  for (int j = 0; i + j < n; ++j) {
    af[j] += f(i + j);
    ag[j] += g(i + j);
  }
  for (int w = 8; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) {
      af[j] += af[j + w];
      ag[j] += ag[j + w];
    }
  sum_f += double(af[0]);
  sum_g += double(ag[0]);
}

// The largest of x[0, n) (−inf for n = 0; NaN is not propagated), in 16 lanes.
inline float lane_max(const float* x, int64_t n) {
  float acc[16];
  for (float& a : acc) a = -std::numeric_limits<float>::infinity();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  for (int w = 8; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] = acc[j + w] > acc[j] ? acc[j + w] : acc[j];
  float m = acc[0];
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

SN_ALWAYS_INLINE inline float exp_fast(float x) {
  // e^x = 2^n · e^r with n = round(x·log2 e) and r = x − n·ln 2 (ln 2 in two parts, so r is
  // exact), |r| ≤ ln 2 / 2; e^r by its Taylor series to r^7 (truncation < 6e-9 relative).
  const float xc = x < -87.5f ? -87.5f : (x > 88.72283f ? 88.72283f : x);
  constexpr float kShifter = 12582912.f;  // 1.5·2^23: the sum rounds to an integer held in the low bits
  const float t = xc * 1.44269504088896341f + kShifter;
  const float n = t - kShifter;
  const uint32_t ni = std::bit_cast<uint32_t>(t) - std::bit_cast<uint32_t>(kShifter);  // n, two's complement
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.f / 5040.f;
  p = p * r + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  // 2^n as exponent bits; for x > 0 built as 2^(n−1)·2, so that n = 128 (x up to 88.72) stays
  // finite. Results below the smallest normal float (x < −87.34) flush to 0.
  const uint32_t k = x > 0.f ? 1u : 0u;
  const float scale = std::bit_cast<float>((ni + 127u - k) << 23);
  const float y = p * scale * (x > 0.f ? 2.f : 1.f);
  if (x != x) return x;  // NaN (a select after vectorisation)
  return x > 88.72283f ? std::numeric_limits<float>::infinity() : (x < -87.33654f ? 0.f : y);
}

SN_ALWAYS_INLINE inline float erf_fast(float x) {
  const float a = x < 0.f ? -x : x;
  // |x| < 0.5: the Maclaurin series to x^13 (truncation < 1e-9).
  const float z = x * x;
  float s = -1.f / 75600.f;  // (-1)^n / (n! (2n+1)) for n = 6 down to 0
  s = s * z + 1.f / 9360.f;
  s = s * z - 1.f / 1320.f;
  s = s * z + 1.f / 216.f;
  s = s * z - 1.f / 42.f;
  s = s * z + 1.f / 10.f;
  s = s * z - 1.f / 3.f;
  s = s * z + 1.f;
  const float small = 1.1283791670955126f * x * s;
  // |x| ≥ 0.5: Abramowitz & Stegun 7.1.26, 1 − t·P(t)·e^(−x²) with t = 1 / (1 + 0.3275911|x|).
  const float t = 1.f / (1.f + 0.3275911f * a);
  float q = 1.061405429f;
  q = q * t - 1.453152027f;
  q = q * t + 1.421413741f;
  q = q * t - 0.284496736f;
  q = q * t + 0.254829592f;
  const float large = 1.f - q * t * exp_fast(-z);
  return a < 0.5f ? small : (x < 0.f ? -large : large);
}

// GELU with the exact (erf) form: x·Φ(x), and its derivative Φ(x) + x·φ(x).
SN_ALWAYS_INLINE inline float gelu_fast(float x) { return 0.5f * x * (1.f + erf_fast(x * 0.70710678118654752f)); }
SN_ALWAYS_INLINE inline float gelu_derivative_fast(float x) {
  const float cdf = 0.5f * (1.f + erf_fast(x * 0.70710678118654752f));
  return cdf + x * 0.39894228040143268f * exp_fast(-0.5f * x * x);
}
SN_ALWAYS_INLINE inline float sigmoid_fast(float x) { return 1.f / (1.f + exp_fast(-x)); }

}  // namespace sn::cpu
