// kernels/cpu/conv_shifted.h — convolution without im2col.
//
// Each image is copied once into a zero-padded plane (Hp × Wp per channel; with a stride, the
// phases below, S_h·S_w planes of Hq × Wq). For stride 1, an output row laid
// out with the padded width Wp turns every kernel tap (kh, kw) into one GEMM over the same plane
// shifted by kh·Wp + kw: y[:, q] += W[:, :, kh, kw] · xpad[:, q + kh·Wp + kw]. The KH·KW GEMMs
// read the plane in place (leading dimension Hp·Wp) instead of expanding it KH·KW times; the
// Wp − Wo columns past each output row are computed and dropped. Images are split across
// threads. Over the planes, either the direct kernel of conv_direct.h runs (forward; backward
// data as the forward convolution of padded dy with the flipped filter; the filter gradient from
// channels-last planes), or one single-threaded BLAS GEMM per tap (backward: the same shifts
// transposed).
//
// A stride S turns into stride 1 by splitting the padded plane into S_h·S_w phases, phase (a, b)
// holding the positions (S_h·i + a, S_w·j + b): output (ho, wo) of tap (kh, kw) reads phase
// (kh mod S_h, kw mod S_w) at (ho + kh / S_h, wo + kw / S_w), so a tap is again one offset into
// the phase planes. The backward-data convolution runs once per phase, over that phase's taps.
#pragma once

#include "kernels/backend.h"

namespace sn::cpu {

// Which convolution algorithm the CPU backend uses for ordinary (non-depthwise) convolutions:
// automatic picks the shifted planes where they apply (no dilation, one group, a batch of at
// least as many images as threads, stride 1 or the direct kernel available), else im2col; over
// the planes it runs the direct register-tiled kernel (conv_direct.h) where the CPU has AVX-512 or
// AVX2, else one BLAS GEMM per tap.
// Over the planes, the forward and stride-1 backward-data convolutions run either the planar
// kernel or the channels-last implicit GEMM (conv_direct.h), whichever the cost estimate favours
// for the shape.
// Tests and benchmarks may force one, and so may the environment:
// SN_CONV_ALGORITHM=im2col|shifted|direct|implicit-gemm (shifted: BLAS per tap; direct: the
// planar kernel only; implicit-gemm: the implicit GEMM wherever it applies; both fall back to
// BLAS per tap without AVX-512 or AVX2).
enum class ConvAlgorithm { automatic, im2col, shifted, direct, implicit_gemm };
void set_conv_algorithm(ConvAlgorithm algorithm);
ConvAlgorithm conv_algorithm();

struct ShiftedConvShape {
  int64_t N, Cin, H, W, Cout, KH, KW, pad_h, pad_w, stride_h = 1, stride_w = 1;
  int64_t Ho() const { return (H + 2 * pad_h - KH) / stride_h + 1; }
  int64_t Wo() const { return (W + 2 * pad_w - KW) / stride_w + 1; }
};

bool shifted_conv_applies(const Conv2dGeometry& g, int64_t N);

// y = conv(x, w); w's [Cin, KH, KW] block is contiguous per output channel (row stride w.stride(0)).
void shifted_conv_forward(const Tensor& y, const Tensor& x, const Tensor& w, const ShiftedConvShape& s);
// dx = convᵀ(dy, w) where defined (written); dw += dy ⋆ x where defined (into its window).
void shifted_conv_backward(const Tensor& dx, const Tensor& dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                           const ShiftedConvShape& s);

}  // namespace sn::cpu
