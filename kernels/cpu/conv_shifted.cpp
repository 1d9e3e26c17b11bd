// kernels/cpu/conv_shifted.cpp — stride-1 convolution as shifted GEMMs (see conv_shifted.h).
#include "kernels/cpu/conv_shifted.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/storage.h"
#include "kernels/cpu/conv_direct.h"
#include "kernels/cpu/plane_copy.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/sgemm.h"

namespace sn::cpu {
namespace {

// SN_CONV_ALGORITHM=im2col|shifted|direct overrides the automatic choice (comparisons, debugging).
ConvAlgorithm algorithm_from_environment() {
  const char* env = std::getenv("SN_CONV_ALGORITHM");
  if (env && std::string(env) == "im2col") return ConvAlgorithm::im2col;
  if (env && std::string(env) == "shifted") return ConvAlgorithm::shifted;
  if (env && std::string(env) == "direct") return ConvAlgorithm::direct;
  return ConvAlgorithm::automatic;
}

std::atomic<ConvAlgorithm> g_algorithm{algorithm_from_environment()};


inline void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                  int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_rowmajor(ta, tb, M, N, K, 1.f, A, lda, B, ldb, beta, C, ldc);
}

// The filter regrouped by tap, each tap a [Cout, Cin] matrix: taps[t][co][ci] = w[co, ci, kh, kw]
// with t = kh·KW + kw. Flipped, for the backward-data convolution: rotated by 180° and with the
// channel roles swapped, flipped[t'][ci][co] = w[co, ci, KH−1−kh', KW−1−kw'], a [Cin, Cout]
// matrix per tap.
Scratch filter_by_tap(const Tensor& w, const ShiftedConvShape& s, bool flipped = false) {
  const int64_t taps = s.KH * s.KW, ldw = w.stride(0);
  Scratch buffer(taps * s.Cout * s.Cin);
  float* out = buffer.data();
  const float* wp = w.data<float>();
#pragma omp parallel for schedule(static) if (taps * s.Cout * s.Cin >= (1 << 15))
  for (int64_t co = 0; co < s.Cout; ++co)
    for (int64_t ci = 0; ci < s.Cin; ++ci)
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t at = flipped ? ((taps - 1 - t) * s.Cin + ci) * s.Cout + co : (t * s.Cout + co) * s.Cin + ci;
        out[at] = wp[co * ldw + ci * taps + t];
      }
  return buffer;
}

// The tap offsets into a plane of width Wp: kh·Wp + kw.
std::vector<int64_t> tap_offsets(int64_t KH, int64_t KW, int64_t Wp) {
  std::vector<int64_t> offsets;
  for (int64_t kh = 0; kh < KH; ++kh)
    for (int64_t kw = 0; kw < KW; ++kw) offsets.push_back(kh * Wp + kw);
  return offsets;
}

bool use_direct() {
  const ConvAlgorithm a = conv_algorithm();
  return direct_conv_available() && (a == ConvAlgorithm::direct || a == ConvAlgorithm::automatic);
}

// Copies image n of x into the interior of a zero-bordered padded plane set [Cin, Hp, Wp].
void pad_image(float* xpad, const Tensor& x, int64_t n, const ShiftedConvShape& s) {
  const int64_t Wp = s.W + 2 * s.pad_w, plane = (s.H + 2 * s.pad_h) * Wp;
  const float* base = x.data<float>() + n * x.stride(0);
  for (int64_t c = 0; c < s.Cin; ++c) {
    const float* src = base + c * x.stride(1);
    float* dst = xpad + c * plane + s.pad_h * Wp + s.pad_w;
    copy_block(src, s.W, dst, Wp, s.H, s.W);
  }
}

// pad_image in channels-last order: x_t[(h + pad_h)·Wp + w + pad_w][c] = x[n, c, h, w].
void pad_image_channels_last(float* x_t, const Tensor& x, int64_t n, const ShiftedConvShape& s) {
  const int64_t Wp = s.W + 2 * s.pad_w;
  to_channels_last(x.data<float>() + n * x.stride(0), x.stride(1), s.Cin, s.H * s.W, [&](int64_t p) {
    return x_t + ((p / s.W + s.pad_h) * Wp + p % s.W + s.pad_w) * s.Cin;
  });
}

}  // namespace

void set_conv_algorithm(ConvAlgorithm algorithm) { g_algorithm.store(algorithm); }
ConvAlgorithm conv_algorithm() { return g_algorithm.load(); }

bool shifted_conv_applies(const Conv2dGeometry& g, int64_t N) {
  const bool shape_ok = g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 && g.dilation_w == 1 && g.groups == 1;
  switch (conv_algorithm()) {
    case ConvAlgorithm::im2col: return false;
    case ConvAlgorithm::shifted:
    case ConvAlgorithm::direct: return shape_ok;
    case ConvAlgorithm::automatic: break;
  }
  // Images are split across threads, so each thread needs one. The BLAS-per-tap variant loses to
  // one large im2col GEMM on a single thread; the direct kernel does not.
  const int threads = omp_get_max_threads();
  return shape_ok && N >= threads && (threads > 1 || direct_conv_available());
}

void shifted_conv_forward(const Tensor& y, const Tensor& x, const Tensor& w, const ShiftedConvShape& s) {
  const int64_t Wp = s.W + 2 * s.pad_w, plane = (s.H + 2 * s.pad_h) * Wp, Ho = s.Ho(), Wo = s.Wo();
  const int64_t rows = Ho * Wp, L = (Ho - 1) * Wp + Wo;  // the last row needs no overhang
  const Scratch taps = filter_by_tap(w, s);
  const bool direct = use_direct();
  const DirectTile tile = direct_tile_for(L, s.Cout);
  const Scratch packed(direct ? s.KH * s.KW * s.Cout * s.Cin : 0);
  if (direct) pack_direct_filter(taps.data(), s.KH * s.KW, s.Cout, s.Cin, tile.mr, packed.data());
  const std::vector<int64_t> offsets = tap_offsets(s.KH, s.KW, Wp);
  const int threads = omp_get_max_threads();
  const ThreadScratch xpads(threads, s.Cin * plane), outs(threads, s.Cout * rows);
  const int64_t y_ns = y.stride(0), y_cs = y.stride(1);  // read once: the copy loops are hot
#pragma omp parallel
  {
  const int t = omp_get_thread_num();
  xpads.zero(t);  // its borders stay zero: pad_image writes the interior only
#pragma omp for schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    float *xpad = xpads[t], *out = outs[t];
    pad_image(xpad, x, n, s);
    if (direct) {
      direct_conv_image({xpad, plane, offsets.data(), s.KH * s.KW, s.Cin, s.Cout, L, out, rows}, packed.data(), tile);
    } else {
      for (int64_t tap = 0; tap < s.KH * s.KW; ++tap)
        sgemm(false, false, s.Cout, L, s.Cin, taps.data() + tap * s.Cout * s.Cin, s.Cin, xpad + offsets[size_t(tap)],
              plane, tap == 0 ? 0.f : 1.f, out, rows);
    }
    float* yn = y.data<float>() + n * y_ns;
    for (int64_t co = 0; co < s.Cout; ++co) copy_block(out + co * rows, Wp, yn + co * y_cs, Wo, Ho, Wo);
  }
  }
}

void shifted_conv_backward(const Tensor& dx, const Tensor& dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                           const ShiftedConvShape& s) {
  const int64_t Wp = s.W + 2 * s.pad_w, plane = (s.H + 2 * s.pad_h) * Wp, Ho = s.Ho(), Wo = s.Wo();
  const int64_t rows = Ho * Wp, L = (Ho - 1) * Wp + Wo, ntaps = s.KH * s.KW, tap_size = s.Cout * s.Cin;
  // With the direct kernel, dx is the forward convolution of dy, zero-padded by K − 1 − pad,
  // with the flipped filter: one more image of the same kernel, no transposed GEMMs.
  const int64_t qh = s.KH - 1 - s.pad_h, qw = s.KW - 1 - s.pad_w;
  const bool direct_dx = dx.defined() && use_direct() && qh >= 0 && qw >= 0;
  // Along Cin the weight kernel's vectors would be mostly idle below 16 channels; BLAS does better.
  const bool direct_dw = dw.defined() && use_direct() && s.Cin >= 16;
  const int64_t Wq = Wo + 2 * qw, plane_q = (Ho + 2 * qh) * Wq, dx_rows = s.H * Wq, Lq = (s.H - 1) * Wq + s.W;
  Scratch taps, packed;
  const std::vector<int64_t> offsets = tap_offsets(s.KH, s.KW, Wp), offsets_q = tap_offsets(s.KH, s.KW, Wq);
  const DirectTile tile = direct_tile_for(Lq, s.Cin), weight_tile = direct_tile_for(s.Cin, s.Cout);
  if (direct_dx) {
    const Scratch flipped = filter_by_tap(w, s, /*flipped=*/true);
    packed = Scratch(ntaps * s.Cin * s.Cout);
    pack_direct_filter(flipped.data(), ntaps, s.Cin, s.Cout, tile.mr, packed.data());
  } else if (dx.defined()) {
    taps = filter_by_tap(w, s);
  }
  // The filter gradient reads dy in the padded-width layout (row stride Wp, zero overhang). When
  // dy's padded plane has that width ("same" padding) the layout is inside the plane.
  const bool dy_in_plane = direct_dx && Wq == Wp;
  const int64_t dy_ld = dy_in_plane ? plane_q : rows;
  const int threads = omp_get_max_threads();
  const ThreadScratch dy_planes(threads, direct_dx ? s.Cout * plane_q : 0);
  const ThreadScratch dys(threads, dy_in_plane || !dw.defined() ? 0 : s.Cout * rows);
  // x padded, channels first for the BLAS path, channels last ([position][ci]) for the direct one.
  const ThreadScratch xpads(threads, dw.defined() ? s.Cin * plane : 0);
  const ThreadScratch dxpads(threads, dx.defined() ? s.Cin * (direct_dx ? dx_rows : plane) : 0);
  const ThreadScratch dw_parts(threads, dw.defined() ? ntaps * tap_size : 0);
  const int64_t dy_ns = dy.stride(0), dy_cs = dy.stride(1);  // read once: the copy loops are hot
  const int64_t dx_ns = dx.defined() ? dx.stride(0) : 0, dx_cs = dx.defined() ? dx.stride(1) : 0;
  int team = 1;  // the threads that zeroed (and may have filled) a dw part
#pragma omp parallel
  {
  const int t = omp_get_thread_num();
#pragma omp master
  team = omp_get_num_threads();
  // Borders and overhangs stay zero: the loop below writes interiors only.
  for (const ThreadScratch* buffer : {&dy_planes, &dys, &xpads, &dw_parts}) buffer->zero(t);
#pragma omp for schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    const float* dyn = dy.data<float>() + n * dy_ns;
    float* dy_plane = dy_planes[t];
    if (direct_dx)  // the borders stay zero: only the interior is ever written
      for (int64_t co = 0; co < s.Cout; ++co)
        copy_block(dyn + co * dy_cs, Wo, dy_plane + co * plane_q + qh * Wq + qw, Wq, Ho, Wo);
    const float* dyp = dy_in_plane ? dy_plane + qh * Wq + qw : dys[t];
    if (!dy_in_plane && dw.defined())  // the overhang columns stay zero, so they add nothing
      for (int64_t co = 0; co < s.Cout; ++co) copy_block(dyn + co * dy_cs, Wo, dys[t] + co * rows, Wp, Ho, Wo);
    if (direct_dw) {
      float* x_t = xpads[t];
      pad_image_channels_last(x_t, x, n, s);
      direct_conv_weight_image({dyp, dy_ld, x_t, offsets.data(), ntaps, s.Cin, s.Cout, L, dw_parts[t]},
                               weight_tile);
    } else if (dw.defined()) {  // dW_tap += dy · xpad_shiftedᵀ
      float* xpad = xpads[t];
      pad_image(xpad, x, n, s);
      for (int64_t tap = 0; tap < ntaps; ++tap)
        sgemm(false, true, s.Cout, s.Cin, L, dyp, dy_ld, xpad + offsets[size_t(tap)], plane, 1.f,
              dw_parts[t] + tap * tap_size, s.Cin);
    }
    if (!dx.defined()) continue;
    float* dxn = dx.data<float>() + n * dx_ns;
    float* dxpad = dxpads[t];
    if (direct_dx) {
      direct_conv_image({dy_plane, plane_q, offsets_q.data(), ntaps, s.Cout, s.Cin, Lq, dxpad, dx_rows}, packed.data(),
                        tile);
      for (int64_t c = 0; c < s.Cin; ++c) copy_block(dxpad + c * dx_rows, Wq, dxn + c * dx_cs, s.W, s.H, s.W);
      continue;
    }
    // dxpad_shifted += W_tapᵀ · dy, then the interior is dx[n]
    std::fill(dxpad, dxpad + s.Cin * plane, 0.f);
    for (int64_t tap = 0; tap < ntaps; ++tap)
      sgemm(true, false, s.Cin, L, s.Cout, taps.data() + tap * tap_size, s.Cin, dyp, dy_ld, 1.f,
            dxpad + offsets[size_t(tap)], plane);
    for (int64_t c = 0; c < s.Cin; ++c) {
      const float* src = dxpad + c * plane + s.pad_h * Wp + s.pad_w;
      copy_block(src, Wp, dxn + c * dx_cs, s.W, s.H, s.W);
    }
  }
  }
  if (!dw.defined()) return;
  // The per-thread sums, added into the filter gradient's window in thread order (deterministic).
  float* out = dw.data<float>();
  const int64_t ldw = dw.stride(0);
#pragma omp parallel for schedule(static)
  for (int64_t co = 0; co < s.Cout; ++co)
    for (int t = 0; t < team; ++t) {
      const float* part = dw_parts[t];
      for (int64_t ci = 0; ci < s.Cin; ++ci)
        for (int64_t tap = 0; tap < ntaps; ++tap) out[co * ldw + ci * ntaps + tap] += part[tap * tap_size + co * s.Cin + ci];
    }
}

}  // namespace sn::cpu
