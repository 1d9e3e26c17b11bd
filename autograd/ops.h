// autograd/ops.h — every tensor operation a model uses: factories, elementwise, reductions,
// linear algebra, softmax and losses, normalisation, convolution, pooling, embedding, dropout.
//
// Each differentiable op computes its result with the device's kernels and, when grad mode is
// on and an input requires grad, records a Node whose backward writes input gradients into
// their windows. Inputs may be any views (a window of a larger parameter included).
#pragma once

#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/backend.h"

namespace sn {

// ---- factories ------------------------------------------------------------------------------
Tensor empty(const Shape& sizes, DType dtype = DType::f32, Device device = Device::cpu());
// Host memory the accelerator copies from asynchronously (Tensor::to(device, non_blocking));
// ordinary host memory when no accelerator backend is in use.
Tensor empty_pinned(const Shape& sizes, DType dtype = DType::f32);
Tensor zeros(const Shape& sizes, DType dtype = DType::f32, Device device = Device::cpu());
Tensor ones(const Shape& sizes, DType dtype = DType::f32, Device device = Device::cpu());
Tensor full(const Shape& sizes, float value, DType dtype = DType::f32, Device device = Device::cpu());
Tensor empty_like(const Tensor& t);
Tensor zeros_like(const Tensor& t);
Tensor from_vector(const std::vector<float>& values, const Shape& sizes);
Tensor from_vector(const std::vector<int64_t>& values, const Shape& sizes);
Tensor arange(int64_t n, DType dtype = DType::i64);
Tensor rand(const Shape& sizes, Generator& gen, Device device = Device::cpu());   // U[0, 1)
Tensor randn(const Shape& sizes, Generator& gen, Device device = Device::cpu());  // N(0, 1)
// The elements in row-major order (copied to the host).
template <class T>
std::vector<T> to_vector(const Tensor& t);

// ---- elementwise (broadcasting) -------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor affine(const Tensor& x, float scale, float shift);  // x * scale + shift
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, float s);
Tensor operator-(const Tensor& a, float s);
Tensor operator*(const Tensor& a, float s);
Tensor operator*(float s, const Tensor& a);
Tensor operator/(const Tensor& a, float s);
Tensor operator-(const Tensor& a);

Tensor unary(Unary op, const Tensor& x);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor square(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x, bool tanh_approximation = false);
Tensor silu(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);

// ---- reductions -----------------------------------------------------------------------------
Tensor sum(const Tensor& x);  // all elements, a 0-d tensor
Tensor sum(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim = false);
// Sums x down to `sizes` (the inverse of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& sizes);

// ---- linear algebra -------------------------------------------------------------------------
// [M,K]@[K,N] or batched [B,M,K]@[B,K,N]; operands may be transposed or windowed views.
Tensor matmul(const Tensor& a, const Tensor& b, float alpha = 1.f);  // alpha · a @ b, the scale inside the GEMM
// y = x @ w^T + b with x [..., in], w [out, in] (typically a window of a larger weight), b [out].
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

// ---- shape ----------------------------------------------------------------------------------
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);

// ---- softmax and losses (over the last dim unless stated) ------------------------------------
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
enum class Reduction { mean, sum, none };
// logits [N, C], target [N] (i64 or i32). Mean is over the rows not ignored.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction = Reduction::mean,
                     int64_t ignore_index = -100, float label_smoothing = 0.f);

// ---- normalisation --------------------------------------------------------------------------
// Over the last dim of x, whose size may be the active prefix of w and b (e.g. w.narrow(0,0,k)).
Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps = 1e-5f);
Tensor rms_norm(const Tensor& x, const Tensor& w, float eps = 1e-6f);
// x [N,C,H,W] (or [N,C]). Training: batch statistics, and running_mean/var (if given) are
// updated in place with `momentum`; eval: running statistics.
Tensor batch_norm(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& running_mean,
                  const Tensor& running_var, bool training, float momentum = 0.1f, float eps = 1e-5f);
// relu(batch_norm(x) + residual) in one pass over the planes (residual may be undefined): the
// "BatchNorm → add → ReLU" of a ResNet block without the intermediate tensors.
Tensor batch_norm_relu(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& running_mean,
                       const Tensor& running_var, bool training, float momentum = 0.1f, float eps = 1e-5f,
                       const Tensor& residual = Tensor());

// ---- convolution and pooling (NCHW) ---------------------------------------------------------
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(), const Conv2dGeometry& g = {});
Tensor max_pool2d(const Tensor& x, const Pool2dGeometry& g);
Tensor avg_pool2d(const Tensor& x, const Pool2dGeometry& g);
Tensor global_avg_pool2d(const Tensor& x);  // [N,C,H,W] -> [N,C]

// ---- embedding and dropout ------------------------------------------------------------------
// index [...] (i64/i32), weight [V, D] -> [..., D].
Tensor embedding(const Tensor& index, const Tensor& weight);
// Inverted dropout: zeroes with probability p and scales the rest by 1/(1-p); identity when
// !training or p == 0. The mask comes from gen (counter-based: reproducible).
Tensor dropout(const Tensor& x, float p, Generator& gen, bool training = true);

}  // namespace sn
