// kernels/cuda/conv.h — the cuDNN convolution path (kernels/cuda/conv_cudnn.cu), used by
// CudaBackend::conv2d when cuDNN is built in and selected; im2col + cuBLAS otherwise.
#pragma once

#include "kernels/backend.h"

namespace sn::cuda {

// y = conv(x, w); w may be any window of a larger filter (packed first).
void conv2d_cudnn(const Tensor& y, const Tensor& x, const Tensor& w, const Conv2dGeometry& g);
// dx written where defined, dw accumulated into its window where defined.
void conv2d_backward_cudnn(const Tensor& dx, const Tensor& dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                           const Conv2dGeometry& g, Backend& backend);

}  // namespace sn::cuda
