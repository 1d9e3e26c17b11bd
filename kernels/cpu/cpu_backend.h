// kernels/cpu/cpu_backend.h — the CPU backend: fp32 kernels, OpenMP across cores, BLAS GEMM
// (OpenBLAS, or the portable kernel of sgemm.cpp).
// Each family lives in its own file (elementwise.cpp, gemm.cpp, conv.cpp, ...).
#pragma once

#include "kernels/backend.h"

namespace sn {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }

  void copy(const Tensor& dst, const Tensor& src) override;
  void fill(const Tensor& dst, float value) override;
  void fill_uniform(const Tensor& dst, const Generator& gen, uint64_t first_block) override;
  void fill_normal(const Tensor& dst, const Generator& gen, uint64_t first_block) override;
  void dropout_mask(const Tensor& mask, float p, const Generator& gen, uint64_t first_block) override;

  void unary(Unary op, const Tensor& out, const Tensor& x) override;
  void unary_backward(Unary op, const Tensor& dx, const Tensor& grad, const Tensor& x,
                      const Tensor& y) override;
  void binary(Binary op, const Tensor& out, const Tensor& a, const Tensor& b) override;
  void affine(const Tensor& out, const Tensor& x, float scale, float shift) override;
  void axpy(const Tensor& y, float alpha, const Tensor& x) override;

  void sum_to(const Tensor& out, const Tensor& x, bool accumulate) override;
  void gemm(const Tensor& c, const Tensor& a, const Tensor& b, float alpha, float beta) override;

  void softmax(const Tensor& y, const Tensor& x, bool log) override;
  void softmax_backward(const Tensor& dx, const Tensor& dy, const Tensor& y, bool log) override;
  void cross_entropy(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                     const Tensor& target, int64_t ignore_index, float smoothing) override;
  void cross_entropy_backward(const Tensor& dlogits, const Tensor& dloss, const Tensor& logits,
                              const Tensor& lse, const Tensor& target, int64_t ignore_index,
                              float smoothing) override;

  void layer_norm(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                  const Tensor& w, const Tensor& b, float eps, bool rms) override;
  void layer_norm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy,
                           const Tensor& x, const Tensor& mean, const Tensor& rstd,
                           const Tensor& w, bool rms) override;
  void batch_norm_stats(const Tensor& mean, const Tensor& var, const Tensor& x) override;
  void batch_norm_apply(const Tensor& y, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                        const Tensor& w, const Tensor& b) override;
  void batch_norm_apply_relu(const Tensor& y, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                             const Tensor& w, const Tensor& b, const Tensor& residual) override;
  void batch_norm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy,
                           const Tensor& x, const Tensor& mean, const Tensor& invstd,
                           const Tensor& w, bool training) override;
  void batch_norm_relu_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dres,
                                const Tensor& dy, const Tensor& y, const Tensor& x, const Tensor& mean,
                                const Tensor& invstd, const Tensor& w, bool training) override;

  void conv2d(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
              const Conv2dGeometry& g) override;
  void conv2d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy,
                       const Tensor& x, const Tensor& w, const Conv2dGeometry& g) override;
  void max_pool2d(const Tensor& y, const Tensor& argmax, const Tensor& x,
                  const Pool2dGeometry& g) override;
  void max_pool2d_backward(const Tensor& dx, const Tensor& dy, const Tensor& argmax) override;
  void avg_pool2d(const Tensor& y, const Tensor& x, const Pool2dGeometry& g) override;
  void avg_pool2d_backward(const Tensor& dx, const Tensor& dy, const Pool2dGeometry& g) override;

  void sgd_step(const Tensor& p, const Tensor& g, const Tensor& v, float lr, float momentum,
                float weight_decay, bool nesterov) override;
  void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, float lr,
                  float beta1, float beta2, float eps, float weight_decay, float bias_correction1,
                  float bias_correction2) override;

  void embedding(const Tensor& y, const Tensor& weight, const Tensor& index) override;
  void embedding_backward(const Tensor& dweight, const Tensor& dy, const Tensor& index) override;
};

}  // namespace sn
