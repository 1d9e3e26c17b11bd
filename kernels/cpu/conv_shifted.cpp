// kernels/cpu/conv_shifted.cpp — stride-1 convolution as shifted GEMMs (see conv_shifted.h).
#include "kernels/cpu/conv_shifted.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/storage.h"
#include "kernels/cpu/sgemm.h"

namespace sn::cpu {
namespace {

// SN_CONV_ALGORITHM=im2col|shifted overrides the automatic choice (comparisons, debugging).
ConvAlgorithm algorithm_from_environment() {
  const char* env = std::getenv("SN_CONV_ALGORITHM");
  if (env && std::string(env) == "im2col") return ConvAlgorithm::im2col;
  if (env && std::string(env) == "shifted") return ConvAlgorithm::shifted;
  return ConvAlgorithm::automatic;
}

std::atomic<ConvAlgorithm> g_algorithm{algorithm_from_environment()};

// Per-thread scratch of n floats, zeroed.
std::vector<std::vector<float>> per_thread(int threads, int64_t n) {
  return std::vector<std::vector<float>>(size_t(threads), std::vector<float>(size_t(n), 0.f));
}

inline void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                  int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_rowmajor(ta, tb, M, N, K, 1.f, A, lda, B, ldb, beta, C, ldc);
}

// The filter regrouped by tap: taps[t][co][ci] = w[co, ci, kh, kw] with t = kh·KW + kw, so that
// each tap is a [Cout, Cin] matrix.
std::vector<float> filter_by_tap(const Tensor& w, const ShiftedConvShape& s) {
  const int64_t taps = s.KH * s.KW, ldw = w.stride(0);
  std::vector<float> out(size_t(taps * s.Cout * s.Cin));
  const float* wp = w.data<float>();
  for (int64_t co = 0; co < s.Cout; ++co)
    for (int64_t ci = 0; ci < s.Cin; ++ci)
      for (int64_t t = 0; t < taps; ++t) out[size_t((t * s.Cout + co) * s.Cin + ci)] = wp[co * ldw + ci * taps + t];
  return out;
}

// Copies image n of x into the interior of a zero-bordered padded plane set [Cin, Hp, Wp].
void pad_image(float* xpad, const Tensor& x, int64_t n, const ShiftedConvShape& s) {
  const int64_t Wp = s.W + 2 * s.pad_w, plane = (s.H + 2 * s.pad_h) * Wp;
  const float* base = x.data<float>() + n * x.stride(0);
  for (int64_t c = 0; c < s.Cin; ++c) {
    const float* src = base + c * x.stride(1);
    float* dst = xpad + c * plane + s.pad_h * Wp + s.pad_w;
    for (int64_t h = 0; h < s.H; ++h) std::copy(src + h * s.W, src + (h + 1) * s.W, dst + h * Wp);
  }
}

}  // namespace

void set_conv_algorithm(ConvAlgorithm algorithm) { g_algorithm.store(algorithm); }
ConvAlgorithm conv_algorithm() { return g_algorithm.load(); }

bool shifted_conv_applies(const Conv2dGeometry& g, int64_t N) {
  const bool shape_ok = g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 && g.dilation_w == 1 && g.groups == 1;
  switch (conv_algorithm()) {
    case ConvAlgorithm::im2col: return false;
    case ConvAlgorithm::shifted: return shape_ok;
    case ConvAlgorithm::automatic: break;
  }
  const int threads = omp_get_max_threads();
  return shape_ok && threads > 1 && N >= threads;
}

void shifted_conv_forward(const Tensor& y, const Tensor& x, const Tensor& w, const ShiftedConvShape& s) {
  const int64_t Wp = s.W + 2 * s.pad_w, plane = (s.H + 2 * s.pad_h) * Wp, Ho = s.Ho(), Wo = s.Wo();
  const int64_t rows = Ho * Wp, L = (Ho - 1) * Wp + Wo;  // the last row needs no overhang
  const std::vector<float> taps = filter_by_tap(w, s);
  const int threads = omp_get_max_threads();
  auto xpads = per_thread(threads, s.Cin * plane), outs = per_thread(threads, s.Cout * rows);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    const int t = omp_get_thread_num();
    float *xpad = xpads[size_t(t)].data(), *out = outs[size_t(t)].data();
    pad_image(xpad, x, n, s);
    for (int64_t kh = 0, tap = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw, ++tap)
        sgemm(false, false, s.Cout, L, s.Cin, taps.data() + tap * s.Cout * s.Cin, s.Cin, xpad + kh * Wp + kw, plane,
              tap == 0 ? 0.f : 1.f, out, rows);
    float* yn = y.data<float>() + n * y.stride(0);
    for (int64_t co = 0; co < s.Cout; ++co)
      for (int64_t ho = 0; ho < Ho; ++ho)
        std::copy(out + co * rows + ho * Wp, out + co * rows + ho * Wp + Wo, yn + co * y.stride(1) + ho * Wo);
  }
}

void shifted_conv_backward(const Tensor& dx, const Tensor& dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                           const ShiftedConvShape& s) {
  const int64_t Wp = s.W + 2 * s.pad_w, plane = (s.H + 2 * s.pad_h) * Wp, Ho = s.Ho(), Wo = s.Wo();
  const int64_t rows = Ho * Wp, L = (Ho - 1) * Wp + Wo, ntaps = s.KH * s.KW, tap_size = s.Cout * s.Cin;
  const std::vector<float> taps = dx.defined() ? filter_by_tap(w, s) : std::vector<float>();
  const int threads = omp_get_max_threads();
  // dy in the padded-width layout; its overhang columns stay zero, so they add nothing.
  auto dys = per_thread(threads, s.Cout * rows);
  auto xpads = per_thread(threads, dw.defined() ? s.Cin * plane : 0);
  auto dxpads = per_thread(threads, dx.defined() ? s.Cin * plane : 0);
  auto dw_parts = per_thread(threads, dw.defined() ? ntaps * tap_size : 0);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    const int t = omp_get_thread_num();
    float* dyp = dys[size_t(t)].data();
    const float* dyn = dy.data<float>() + n * dy.stride(0);
    for (int64_t co = 0; co < s.Cout; ++co)
      for (int64_t ho = 0; ho < Ho; ++ho)
        std::copy(dyn + co * dy.stride(1) + ho * Wo, dyn + co * dy.stride(1) + (ho + 1) * Wo, dyp + co * rows + ho * Wp);
    if (dw.defined()) {  // dW_tap += dy · xpad_shiftedᵀ
      float* xpad = xpads[size_t(t)].data();
      pad_image(xpad, x, n, s);
      for (int64_t kh = 0, tap = 0; kh < s.KH; ++kh)
        for (int64_t kw = 0; kw < s.KW; ++kw, ++tap)
          sgemm(false, true, s.Cout, s.Cin, L, dyp, rows, xpad + kh * Wp + kw, plane, 1.f,
                dw_parts[size_t(t)].data() + tap * tap_size, s.Cin);
    }
    if (dx.defined()) {  // dxpad_shifted += W_tapᵀ · dy, then the interior is dx[n]
      float* dxpad = dxpads[size_t(t)].data();
      std::fill(dxpad, dxpad + s.Cin * plane, 0.f);
      for (int64_t kh = 0, tap = 0; kh < s.KH; ++kh)
        for (int64_t kw = 0; kw < s.KW; ++kw, ++tap)
          sgemm(true, false, s.Cin, L, s.Cout, taps.data() + tap * tap_size, s.Cin, dyp, rows, 1.f,
                dxpad + kh * Wp + kw, plane);
      float* dxn = dx.data<float>() + n * dx.stride(0);
      for (int64_t c = 0; c < s.Cin; ++c) {
        const float* src = dxpad + c * plane + s.pad_h * Wp + s.pad_w;
        for (int64_t h = 0; h < s.H; ++h) std::copy(src + h * Wp, src + h * Wp + s.W, dxn + c * dx.stride(1) + h * s.W);
      }
    }
  }
  if (!dw.defined()) return;
  // The per-thread sums, added into the filter gradient's window in thread order (deterministic).
  float* out = dw.data<float>();
  const int64_t ldw = dw.stride(0);
  for (int t = 0; t < threads; ++t) {
    const float* part = dw_parts[size_t(t)].data();
    for (int64_t co = 0; co < s.Cout; ++co)
      for (int64_t ci = 0; ci < s.Cin; ++ci)
        for (int64_t tap = 0; tap < ntaps; ++tap) out[co * ldw + ci * ntaps + tap] += part[tap * tap_size + co * s.Cin + ci];
  }
}

}  // namespace sn::cpu
