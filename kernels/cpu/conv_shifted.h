// kernels/cpu/conv_shifted.h — stride-1 convolution without im2col.
//
// Each image is copied once into a zero-padded plane (Hp × Wp per channel). An output row laid
// out with the padded width Wp turns every kernel tap (kh, kw) into one GEMM over the same plane
// shifted by kh·Wp + kw: y[:, q] += W[:, :, kh, kw] · xpad[:, q + kh·Wp + kw]. The KH·KW GEMMs
// read the plane in place (leading dimension Hp·Wp) instead of expanding it KH·KW times; the
// Wp − Wo columns past each output row are computed and dropped. Images are split across
// threads. Over the planes, either the direct kernel of conv_direct.h runs (forward; backward
// data as the forward convolution of padded dy with the flipped filter; the filter gradient from
// channels-last planes), or one single-threaded BLAS GEMM per tap (backward: the same shifts
// transposed).
#pragma once

#include "kernels/backend.h"

namespace sn::cpu {

// Which convolution algorithm the CPU backend uses for ordinary (non-depthwise) convolutions:
// automatic picks the shifted planes where they apply (stride 1, no dilation, one group, a batch
// of at least as many images as threads), else im2col; over the planes it runs the direct
// register-tiled kernel (conv_direct.h) where the build has AVX-512, else one BLAS GEMM per tap.
// Tests and benchmarks may force one, and so may the environment:
// SN_CONV_ALGORITHM=im2col|shifted|direct (shifted: BLAS per tap; direct falls back to it
// without AVX-512).
enum class ConvAlgorithm { automatic, im2col, shifted, direct };
void set_conv_algorithm(ConvAlgorithm algorithm);
ConvAlgorithm conv_algorithm();

struct ShiftedConvShape {
  int64_t N, Cin, H, W, Cout, KH, KW, pad_h, pad_w;
  int64_t Ho() const { return H + 2 * pad_h - KH + 1; }
  int64_t Wo() const { return W + 2 * pad_w - KW + 1; }
};

bool shifted_conv_applies(const Conv2dGeometry& g, int64_t N);

// y = conv(x, w); w's [Cin, KH, KW] block is contiguous per output channel (row stride w.stride(0)).
void shifted_conv_forward(const Tensor& y, const Tensor& x, const Tensor& w, const ShiftedConvShape& s);
// dx = convᵀ(dy, w) where defined (written); dw += dy ⋆ x where defined (into its window).
void shifted_conv_backward(const Tensor& dx, const Tensor& dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                           const ShiftedConvShape& s);

}  // namespace sn::cpu
