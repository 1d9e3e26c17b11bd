// kernels/cuda/cuda_backend.h — the CUDA backend: a caching device allocator, the stream kernels
// run on, and every kernel of the Backend interface.
#pragma once

#include <cuda_runtime.h>

#include "kernels/backend.h"

namespace sn {

// True when a CUDA device is present and usable.
bool cuda_available();
int cuda_device_count();
// The stream kernels of the current thread run on (the default stream until set).
cudaStream_t current_stream();

// A stream of its own (non-blocking with respect to the default stream).
class CudaStream {
 public:
  CudaStream();
  ~CudaStream();
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  cudaStream_t get() const { return stream_; }
  void synchronize() const;  // the host waits for the work queued so far

 private:
  cudaStream_t stream_ = nullptr;
};

// Makes `stream` the calling thread's current stream for a scope. The caching allocator does not
// track streams, so the scope is ordered with the stream it replaces at both ends (that stream's
// queued work before the scope's, the scope's before anything queued after it): memory freed on
// one side and reused on the other is never read by both. The host never waits. GPU work is
// issued from one host thread: two threads queuing kernels on two streams at once could be handed
// a block the other's stream still uses. (Other threads may stage host data: pinned memory and
// non-blocking copies are tracked per copy.)
class CudaStreamGuard {
 public:
  explicit CudaStreamGuard(cudaStream_t stream);
  ~CudaStreamGuard();
  CudaStreamGuard(const CudaStreamGuard&) = delete;
  CudaStreamGuard& operator=(const CudaStreamGuard&) = delete;

 private:
  cudaStream_t previous_;
};

// A point in a stream: record it, then make another stream or the host wait for it, or time
// the work between two of them.
class CudaEvent {
 public:
  explicit CudaEvent(bool timing = false);
  ~CudaEvent();
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  void record(cudaStream_t stream = current_stream());
  // Work queued on `stream` after this call starts once the event's point has passed.
  void block(cudaStream_t stream = current_stream()) const;
  void synchronize() const;  // the host waits
  bool query() const;        // passed already
  // Milliseconds from `start` to this event; both recorded with timing on, this one passed.
  float elapsed_ms(const CudaEvent& start) const;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// fp32 GEMMs (and the convolutions built on them) use the TF32 tensor cores unless disabled
// (default on, as in the frameworks users compare with; SN_CUDA_TF32=0 turns it off at start).
void set_cuda_tf32(bool enabled);
bool cuda_tf32();
// bf16 autocast of the GEMMs (off by default; SN_CUDA_BF16=1 turns it on at start): operands
// rounded to bf16 in packed copies, fp32 accumulation and fp32 outputs (see MatmulPrecision).
void set_cuda_bf16(bool enabled);
bool cuda_bf16();
// SN_CUDA_TF32=0|1 and SN_CUDA_BF16=0|1, where set, applied over the current settings (at start,
// and over a recipe's train.precision: apply_matmul_precision).
void apply_cuda_precision_environment();

// Convolutions run through cuDNN where it is built in (the default), else im2col + cuBLAS;
// set_cuda_conv_cudnn(false) or SN_CUDA_CONV=im2col at start selects im2col.
bool cuda_conv_cudnn_built();
void set_cuda_conv_cudnn(bool enabled);
bool cuda_conv_cudnn();

// Every kernel of the Backend interface, on the GPU (kernels/cuda/*.cu, one file per family).
class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }
  void synchronize() override;
  // Same device, or host <-> device (then the host side must be contiguous; Tensor::to packs).
  void copy(const Tensor& dst, const Tensor& src) override;
  // From pinned host memory (empty_pinned): queued on the current stream, no host wait.
  void copy_non_blocking(const Tensor& dst, const Tensor& src) override;
  void fill(const Tensor& dst, float value) override;
  void fill_uniform(const Tensor& dst, const Generator& gen, uint64_t first_block) override;
  void fill_normal(const Tensor& dst, const Generator& gen, uint64_t first_block) override;
  void dropout_mask(const Tensor& mask, float p, const Generator& gen, uint64_t first_block) override;

  void unary(Unary op, const Tensor& out, const Tensor& x) override;
  void unary_backward(Unary op, const Tensor& dx, const Tensor& grad, const Tensor& x, const Tensor& y) override;
  void binary(Binary op, const Tensor& out, const Tensor& a, const Tensor& b) override;
  void affine(const Tensor& out, const Tensor& x, float scale, float shift) override;
  void axpy(const Tensor& y, float alpha, const Tensor& x) override;
  void sum_to(const Tensor& out, const Tensor& x, bool accumulate) override;
  void gemm(const Tensor& c, const Tensor& a, const Tensor& b, float alpha, float beta) override;

  void softmax(const Tensor& y, const Tensor& x, bool log) override;
  void softmax_backward(const Tensor& dx, const Tensor& dy, const Tensor& y, bool log) override;
  void cross_entropy(const Tensor& loss, const Tensor& lse, const Tensor& logits, const Tensor& target,
                     int64_t ignore_index, float smoothing) override;
  void cross_entropy_backward(const Tensor& dlogits, const Tensor& dloss, const Tensor& logits, const Tensor& lse,
                              const Tensor& target, int64_t ignore_index, float smoothing) override;

  void layer_norm(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x, const Tensor& w,
                  const Tensor& b, float eps, bool rms) override;
  void layer_norm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy, const Tensor& x,
                           const Tensor& mean, const Tensor& rstd, const Tensor& w, bool rms) override;
  void batch_norm_stats(const Tensor& mean, const Tensor& var, const Tensor& x) override;
  void batch_norm_apply(const Tensor& y, const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& w,
                        const Tensor& b) override;
  void batch_norm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy, const Tensor& x,
                           const Tensor& mean, const Tensor& invstd, const Tensor& w, bool training) override;

  void conv2d(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dGeometry& g) override;
  void conv2d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy, const Tensor& x,
                       const Tensor& w, const Conv2dGeometry& g) override;
  void max_pool2d(const Tensor& y, const Tensor& argmax, const Tensor& x, const Pool2dGeometry& g) override;
  void max_pool2d_backward(const Tensor& dx, const Tensor& dy, const Tensor& argmax) override;
  void avg_pool2d(const Tensor& y, const Tensor& x, const Pool2dGeometry& g) override;
  void avg_pool2d_backward(const Tensor& dx, const Tensor& dy, const Pool2dGeometry& g) override;

  void sgd_step(const Tensor& p, const Tensor& g, const Tensor& v, float lr, float momentum, float weight_decay,
                bool nesterov) override;
  void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, float lr, float beta1,
                  float beta2, float eps, float weight_decay, float bias_correction1,
                  float bias_correction2) override;

  void embedding(const Tensor& y, const Tensor& weight, const Tensor& index) override;
  void embedding_backward(const Tensor& dweight, const Tensor& dy, const Tensor& index) override;
};

// The backend instance; registers the CUDA allocators (device, pinned host) on first use.
Backend& cuda_backend();

}  // namespace sn
