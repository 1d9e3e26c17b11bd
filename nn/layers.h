// nn/layers.h — layers whose parameters nest: each takes the Widths (functions of the
// sub-model) of its dims, and its forward uses the prefix windows of its parameters.
#pragma once

#include "kernels/backend.h"
#include "nn/module.h"

namespace sn {

// y = x Wᵀ + b with W [out_max, in_max]; a sub-model uses W[:out, :in] and b[:out].
class Linear : public Layer {
 public:
  Linear(int64_t in_max, int64_t out_max, Width in, Width out, Generator& init, bool bias = true);
  Tensor forward(const Tensor& x, const ForwardContext& ctx) override;
  Tensor weight, bias;

 private:
  Width in_, out_;
};

// NCHW convolution with W [out_max, in_max (1 if depthwise), k, k]; a sub-model uses the first
// `out` filters over its first `in` channels. Depthwise: one filter per channel (out == in).
class Conv2d : public Layer {
 public:
  struct Options {
    int64_t kernel = 3, stride = 1, padding = 1;
    bool depthwise = false;
    bool bias = false;
  };
  Conv2d(int64_t in_max, int64_t out_max, Width in, Width out, Options options, Generator& init);
  Tensor forward(const Tensor& x, const ForwardContext& ctx) override;
  Tensor weight, bias;
  const Options& options() const { return options_; }

 private:
  Width in_, out_;
  Options options_;
};

// How BatchNorm keeps running statistics under nesting (DESIGN.md §1): one set per sub-model,
// one shared set, or one set recomputed per sub-model before evaluation (recalibration).
enum class BnStats { per_submodel, shared, recalibrate };
BnStats parse_bn_stats(const std::string& text);
const char* bn_stats_name(BnStats mode);

class BatchNorm2d : public Layer {
 public:
  // `stat_sets`: how many sub-models keep private statistics (per_submodel), else 1.
  BatchNorm2d(int64_t channels_max, Width channels, BnStats mode, int64_t stat_sets,
              float momentum = 0.1f, float eps = 1e-5f);
  Tensor forward(const Tensor& x, const ForwardContext& ctx) override;
  // relu(forward(x) + residual) in one pass (residual may be undefined): see batch_norm_relu.
  Tensor forward_relu(const Tensor& x, const ForwardContext& ctx, const Tensor& residual = Tensor());
  // Recalibration: each statistics row the next batches use forgets its values at its first
  // batch, then averages over its batches (cumulative); rows not used keep theirs.
  void begin_recalibration();
  void end_recalibration();
  Tensor weight, bias, running_mean, running_var;  // stats: [stat_sets, channels_max]

 private:
  Width channels_;
  BnStats mode_;
  float momentum_, eps_;
  std::vector<int64_t> recalibration_batches_;  // per row, while recalibrating (else empty)
  Tensor normalize(const Tensor& x, const ForwardContext& ctx, bool relu, const Tensor& residual);
};

// Over the active prefix of the last dim, with the matching windows of weight and bias.
class LayerNorm : public Layer {
 public:
  LayerNorm(int64_t dim_max, Width dim, float eps = 1e-5f);
  Tensor forward(const Tensor& x, const ForwardContext& ctx) override;
  Tensor weight, bias;

 private:
  Width dim_;
  float eps_;
};

class RMSNorm : public Layer {
 public:
  RMSNorm(int64_t dim_max, Width dim, float eps = 1e-6f);
  Tensor forward(const Tensor& x, const ForwardContext& ctx) override;
  Tensor weight;

 private:
  Width dim_;
  float eps_;
};

// index [...] -> [..., dim] from the first `dim` columns of the table.
class Embedding : public Layer {
 public:
  Embedding(int64_t vocab, int64_t dim_max, Width dim, Generator& init);
  Tensor forward(const Tensor& index, const ForwardContext& ctx) override;
  Tensor weight;

 private:
  Width dim_;
};

class Dropout : public Layer {
 public:
  explicit Dropout(float p) : p_(p) {}
  Tensor forward(const Tensor& x, const ForwardContext& ctx) override;

 private:
  float p_;
};

class ReLU : public Layer {
 public:
  Tensor forward(const Tensor& x, const ForwardContext&) override;
};

// Applies its layers in order. Depth nesting: with a depth Width, a sub-model runs only the
// first depth(sub) layers.
class Sequential : public Layer {
 public:
  explicit Sequential(Width depth = {}) : depth_(std::move(depth)) {}
  void add(const std::string& name, std::shared_ptr<Layer> layer);
  Tensor forward(const Tensor& x, const ForwardContext& ctx) override;
  size_t size() const { return layers_.size(); }
  Layer& operator[](size_t i) { return *layers_[i]; }

 private:
  Width depth_;
  std::vector<std::shared_ptr<Layer>> layers_;
};

}  // namespace sn
