// kernels/backend.h — the kernel interface each device implements (CPU here, CUDA beside it).
//
// Kernels are raw: no autograd, outputs are allocated by the caller (autograd/ops), inputs are
// any strided views. Each method states its shapes. A backend that lacks a kernel inherits the
// default, which throws an sn::Error naming the kernel and the device.
#pragma once

#include <string>

#include <cstdint>

#include "core/rng.h"
#include "core/tensor.h"

namespace sn {

enum class Unary : uint8_t { neg, exp, log, sqrt, abs, relu, gelu, gelu_tanh, silu, tanh, sigmoid, square };
enum class Binary : uint8_t { add, sub, mul, div };
const char* unary_name(Unary op);

// A contiguous f32 tensor on `device`, uninitialised: a kernel's temporary buffer (from the
// device's caching allocator; the kernels library has no tensor factories).
Tensor scratch_tensor(const Shape& sizes, Device device = Device::cpu());
const char* binary_name(Binary op);

// 2-d convolution / pooling geometry (NCHW).
struct Conv2dGeometry {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};
struct Pool2dGeometry {
  int64_t kernel_h = 2, kernel_w = 2;
  int64_t stride_h = 2, stride_w = 2;
  int64_t pad_h = 0, pad_w = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // Waits until the device has finished the work queued so far (CPU kernels finish in place).
  virtual void synchronize() {}

  // dst[...] = src[...]; same sizes, any strides; converts between dtypes.
  virtual void copy(const Tensor& dst, const Tensor& src);
  // The same, except that a host -> device copy from pinned memory may return before it is done
  // (an accelerator queues it on its stream); every other copy behaves as copy().
  virtual void copy_non_blocking(const Tensor& dst, const Tensor& src) { copy(dst, src); }
  virtual void fill(const Tensor& dst, float value);
  // dst = uniform [0,1) or standard normal; element i draws from block(first_block + i/4 or i/2).
  virtual void fill_uniform(const Tensor& dst, const Generator& gen, uint64_t first_block);
  virtual void fill_normal(const Tensor& dst, const Generator& gen, uint64_t first_block);
  // mask = (uniform >= p) / (1 - p): an inverted-dropout mask, element i from block(first + i/4).
  virtual void dropout_mask(const Tensor& mask, float p, const Generator& gen, uint64_t first_block);

  // ---- elementwise, f32; inputs already expanded to out's sizes ---------------------------
  virtual void unary(Unary op, const Tensor& out, const Tensor& x);
  // dx = grad * f'(x), given x and y = f(x) (whichever the derivative needs).
  virtual void unary_backward(Unary op, const Tensor& dx, const Tensor& grad, const Tensor& x,
                              const Tensor& y);
  virtual void binary(Binary op, const Tensor& out, const Tensor& a, const Tensor& b);
  virtual void affine(const Tensor& out, const Tensor& x, float scale, float shift);  // x*s+t
  virtual void axpy(const Tensor& y, float alpha, const Tensor& x);  // y += alpha * x

  // ---- reductions -------------------------------------------------------------------------
  // out has x's rank with size 1 wherever it is summed over: out = sum (or out += sum).
  virtual void sum_to(const Tensor& out, const Tensor& x, bool accumulate);

  // ---- linear algebra ---------------------------------------------------------------------
  // c = alpha * a @ b + beta * c; 2-d [M,K]@[K,N] or batched 3-d [B,M,K]@[B,K,N]. Any of a, b, c
  // may be a transposed or windowed view (leading dimensions are passed through, no copies).
  virtual void gemm(const Tensor& c, const Tensor& a, const Tensor& b, float alpha, float beta);

  // ---- softmax and losses (last dim) ------------------------------------------------------
  virtual void softmax(const Tensor& y, const Tensor& x, bool log);
  virtual void softmax_backward(const Tensor& dx, const Tensor& dy, const Tensor& y, bool log);
  // logits [N,C], target [N] (i64): loss[N] per row (0 where ignored), lse[N] = logsumexp.
  // With smoothing s: target distribution (1-s)·onehot + s/C.
  virtual void cross_entropy(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                             const Tensor& target, int64_t ignore_index, float smoothing);
  // dlogits = dloss[n] * (softmax - target distribution); dloss [N].
  virtual void cross_entropy_backward(const Tensor& dlogits, const Tensor& dloss,
                                      const Tensor& logits, const Tensor& lse,
                                      const Tensor& target, int64_t ignore_index, float smoothing);

  // ---- normalisation ----------------------------------------------------------------------
  // Over the last dim of x [R, D]: y = (x - mean) * rstd * w + b (rms: y = x * rstd * w).
  // w, b [D] may be undefined; mean, rstd [R] are saved for backward.
  virtual void layer_norm(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                          const Tensor& w, const Tensor& b, float eps, bool rms);
  // dx (written) and dw, db (accumulated) where defined.
  virtual void layer_norm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db,
                                   const Tensor& dy, const Tensor& x, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& w, bool rms);
  // x [N,C,H,W]: per-channel mean and biased variance.
  virtual void batch_norm_stats(const Tensor& mean, const Tensor& var, const Tensor& x);
  // y = (x - mean[c]) * invstd[c] * w[c] + b[c]; w, b may be undefined.
  virtual void batch_norm_apply(const Tensor& y, const Tensor& x, const Tensor& mean,
                                const Tensor& invstd, const Tensor& w, const Tensor& b);
  // y = max(batch_norm_apply(x) + residual, 0), residual undefined for none: the BatchNorm, the
  // residual add and the ReLU of a ResNet block. The default runs the three kernels one after
  // another; a backend may fuse them into one pass over the planes.
  virtual void batch_norm_apply_relu(const Tensor& y, const Tensor& x, const Tensor& mean,
                                     const Tensor& invstd, const Tensor& w, const Tensor& b,
                                     const Tensor& residual);
  // training: batch statistics are functions of x; eval: constants. dw, db accumulate.
  virtual void batch_norm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db,
                                   const Tensor& dy, const Tensor& x, const Tensor& mean,
                                   const Tensor& invstd, const Tensor& w, bool training);
  // The backward of y = batch_norm_apply_relu(x, ...) from its output y: the ReLU's mask applied to
  // dy, then batch_norm_backward. dres (written, where defined) receives the masked gradient, the
  // residual's. The default runs the two kernels; a backend may fuse them.
  virtual void batch_norm_relu_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dres,
                                        const Tensor& dy, const Tensor& y, const Tensor& x, const Tensor& mean,
                                        const Tensor& invstd, const Tensor& w, bool training);

  // ---- convolution and pooling (NCHW) -----------------------------------------------------
  // x [N,Cin,H,W], w [Cout,Cin/groups,KH,KW] (any window of a larger filter), b [Cout] or none.
  virtual void conv2d(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
                      const Conv2dGeometry& g);
  // dx written where defined; dw and db accumulated into their windows where defined.
  virtual void conv2d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db,
                               const Tensor& dy, const Tensor& x, const Tensor& w,
                               const Conv2dGeometry& g);
  virtual void max_pool2d(const Tensor& y, const Tensor& argmax, const Tensor& x,
                          const Pool2dGeometry& g);
  virtual void max_pool2d_backward(const Tensor& dx, const Tensor& dy, const Tensor& argmax);
  // Padding counts in the divisor (count_include_pad).
  virtual void avg_pool2d(const Tensor& y, const Tensor& x, const Pool2dGeometry& g);
  virtual void avg_pool2d_backward(const Tensor& dx, const Tensor& dy, const Pool2dGeometry& g);

  // ---- optimizer steps (fused; every tensor the same sizes, any strides) -------------------
  // SGD with momentum: v = mu*v + (g + wd*p); p -= lr * (nesterov ? g + wd*p + mu*v : v).
  virtual void sgd_step(const Tensor& p, const Tensor& g, const Tensor& v, float lr, float momentum,
                        float weight_decay, bool nesterov);
  // AdamW: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g²;
  // p -= lr * (m/c1 / (sqrt(v/c2) + eps) + wd*p), with c1 = 1-b1^t, c2 = 1-b2^t.
  virtual void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v,
                          float lr, float beta1, float beta2, float eps, float weight_decay,
                          float bias_correction1, float bias_correction2);

  // ---- embedding --------------------------------------------------------------------------
  // y[..., D] = weight[index[...], :D]; backward accumulates rows into the weight's window.
  virtual void embedding(const Tensor& y, const Tensor& weight, const Tensor& index);
  virtual void embedding_backward(const Tensor& dweight, const Tensor& dy, const Tensor& index);
};

// How GPU matrix products treat fp32 operands: exactly (fp32), on the TF32 tensor cores (the
// default), or bf16 autocast (operands rounded to bf16, products accumulated in fp32 into the
// fp32 outputs: parameters, their gradients and the optimizer stay fp32 — the master weights).
// Linear layers and attention run through these products; convolutions through cuDNN keep
// fp32/TF32 (the im2col fallback's GEMMs follow the setting). The CPU always computes in fp32.
enum class MatmulPrecision { fp32, tf32, bf16 };
MatmulPrecision parse_matmul_precision(const std::string& name);  // "fp32" | "tf32" | "bf16"
void set_matmul_precision(MatmulPrecision precision);
MatmulPrecision matmul_precision();
// A recipe's train.precision, then the environment over it: SN_CUDA_TF32=0|1 and SN_CUDA_BF16=0|1,
// where set, override what the recipe says (what the training and evaluation commands call).
void apply_matmul_precision(const std::string& recipe_precision);

// The backend for a device; CUDA registers its own when built.
Backend& backend_for(Device device);
// Fails with one line unless `device` can run kernels here (built in, present, index in range).
void check_device(Device device);
void register_backend(DeviceType type, Backend* backend);

}  // namespace sn
