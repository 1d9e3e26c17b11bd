// nn/layers.cpp — Linear, Conv2d, BatchNorm2d, LayerNorm, RMSNorm, Embedding, Dropout, ReLU,
// Sequential.
#include "nn/layers.h"

#include <cmath>

#include "autograd/ops.h"
#include "core/grad_mode.h"

namespace sn {

namespace {

void check_width(const char* layer, const char* what, int64_t got, int64_t expected, const SubModel& sub) {
  SN_CHECK(got == expected, layer, what, " is ", got, " but sub-model ", sub.str(), " expects ", expected);
}

}  // namespace

Linear::Linear(int64_t in_max, int64_t out_max, Width in, Width out, Generator& init, bool with_bias)
    : in_(std::move(in)), out_(std::move(out)) {
  float bound = 1.f / std::sqrt(float(in_max));  // U(-bound, bound): PyTorch's default
  weight = register_parameter("weight", init_uniform({out_max, in_max}, bound, init), {out_, in_});
  if (with_bias) bias = register_parameter("bias", init_uniform({out_max}, bound, init), {out_});
}

Tensor Linear::forward(const Tensor& x, const ForwardContext& ctx) {
  const int64_t in = in_(ctx.sub), out = out_(ctx.sub);
  check_width("Linear", "input width", x.size(-1), in, ctx.sub);
  return linear(x, weight.prefix({out, in}), bias.defined() ? bias.narrow(0, 0, out) : Tensor());
}

Conv2d::Conv2d(int64_t in_max, int64_t out_max, Width in, Width out, Options options, Generator& init)
    : in_(std::move(in)), out_(std::move(out)), options_(options) {
  SN_CHECK(!options.depthwise || in_max == out_max, "Conv2d", "depthwise needs equal in/out channels, got ",
           in_max, " and ", out_max);
  const int64_t k = options.kernel, per_filter = options.depthwise ? 1 : in_max;
  // He (fan-out) initialisation, as ResNets use.
  float std = std::sqrt(2.f / float(out_max * k * k / (options.depthwise ? out_max : 1)));
  Width in_dim = options.depthwise ? fixed_width(1) : in_;
  weight = register_parameter("weight", init_normal({out_max, per_filter, k, k}, std, init),
                              {out_, in_dim, fixed_width(k), fixed_width(k)});
  if (options.bias) bias = register_parameter("bias", zeros({out_max}), {out_});
}

Tensor Conv2d::forward(const Tensor& x, const ForwardContext& ctx) {
  const int64_t in = in_(ctx.sub), out = out_(ctx.sub);
  check_width("Conv2d", "input channels", x.size(1), in, ctx.sub);
  Conv2dGeometry g{options_.stride, options_.stride, options_.padding, options_.padding, 1, 1, 1};
  Tensor w;
  if (options_.depthwise) {
    check_width("Conv2d", "depthwise output channels", out, in, ctx.sub);
    g.groups = in;
    w = weight.prefix({out});
  } else {
    w = weight.prefix({out, in});
  }
  return conv2d(x, w, bias.defined() ? bias.narrow(0, 0, out) : Tensor(), g);
}

BnStats parse_bn_stats(const std::string& text) {
  if (text == "per_submodel") return BnStats::per_submodel;
  if (text == "shared") return BnStats::shared;
  if (text == "recalibrate") return BnStats::recalibrate;
  fail("bn_stats", "unknown mode '" + text + "' (per_submodel, shared or recalibrate)");
}

const char* bn_stats_name(BnStats mode) {
  switch (mode) {
    case BnStats::per_submodel: return "per_submodel";
    case BnStats::shared: return "shared";
    case BnStats::recalibrate: return "recalibrate";
  }
  return "?";
}

BatchNorm2d::BatchNorm2d(int64_t channels_max, Width channels, BnStats mode, int64_t stat_sets,
                         float momentum, float eps)
    : channels_(std::move(channels)), mode_(mode), momentum_(momentum), eps_(eps) {
  const int64_t sets = mode == BnStats::per_submodel ? stat_sets : 1;
  SN_CHECK(sets >= 1, "BatchNorm2d", "needs at least one set of statistics");
  weight = register_parameter("weight", ones({channels_max}), {channels_});
  bias = register_parameter("bias", zeros({channels_max}), {channels_});
  running_mean = register_buffer("running_mean", zeros({sets, channels_max}));
  running_var = register_buffer("running_var", ones({sets, channels_max}));
}

Tensor BatchNorm2d::forward(const Tensor& x, const ForwardContext& ctx) { return normalize(x, ctx, false, Tensor()); }

Tensor BatchNorm2d::forward_relu(const Tensor& x, const ForwardContext& ctx, const Tensor& residual) {
  return normalize(x, ctx, true, residual);
}

Tensor BatchNorm2d::normalize(const Tensor& x, const ForwardContext& ctx, bool relu, const Tensor& residual) {
  const int64_t c = x.size(1);
  check_width("BatchNorm2d", "channels", c, channels_(ctx.sub), ctx.sub);
  const int64_t row = mode_ == BnStats::per_submodel ? ctx.sub_index : 0;
  SN_CHECK(row >= 0 && row < running_mean.size(0), "BatchNorm2d", "sub-model index ", row,
           " has no statistics (", running_mean.size(0), " sets)");
  // A wrong index would silently use another sub-model's statistics.
  SN_CHECK(mode_ != BnStats::per_submodel || ctx.sub.index() == row, "BatchNorm2d", "the context's sub-model index ",
           row, " is not that of ", ctx.sub.str(), " (", ctx.sub.index(), ")");
  float momentum = momentum_;
  if (!recalibration_batches_.empty()) {
    const int64_t seen = ++recalibration_batches_[size_t(row)];
    if (seen == 1) {
      NoGradGuard no_grad;
      running_mean.select(0, row).fill_(0.f);
      running_var.select(0, row).fill_(1.f);
    }
    momentum = 1.f / float(seen);
  }
  const Tensor w = weight.narrow(0, 0, c), b = bias.narrow(0, 0, c);
  const Tensor mean = running_mean.select(0, row).narrow(0, 0, c), var = running_var.select(0, row).narrow(0, 0, c);
  if (relu) return batch_norm_relu(x, w, b, mean, var, is_training(), momentum, eps_, residual);
  return batch_norm(x, w, b, mean, var, is_training(), momentum, eps_);
}

void BatchNorm2d::begin_recalibration() { recalibration_batches_.assign(size_t(running_mean.size(0)), 0); }

void BatchNorm2d::end_recalibration() { recalibration_batches_.clear(); }

LayerNorm::LayerNorm(int64_t dim_max, Width dim, float eps) : dim_(std::move(dim)), eps_(eps) {
  weight = register_parameter("weight", ones({dim_max}), {dim_});
  bias = register_parameter("bias", zeros({dim_max}), {dim_});
}

Tensor LayerNorm::forward(const Tensor& x, const ForwardContext& ctx) {
  const int64_t d = x.size(-1);
  check_width("LayerNorm", "features", d, dim_(ctx.sub), ctx.sub);
  return layer_norm(x, weight.narrow(0, 0, d), bias.narrow(0, 0, d), eps_);
}

RMSNorm::RMSNorm(int64_t dim_max, Width dim, float eps) : dim_(std::move(dim)), eps_(eps) {
  weight = register_parameter("weight", ones({dim_max}), {dim_});
}

Tensor RMSNorm::forward(const Tensor& x, const ForwardContext& ctx) {
  const int64_t d = x.size(-1);
  check_width("RMSNorm", "features", d, dim_(ctx.sub), ctx.sub);
  return rms_norm(x, weight.narrow(0, 0, d), eps_);
}

Embedding::Embedding(int64_t vocab, int64_t dim_max, Width dim, Generator& init) : dim_(std::move(dim)) {
  weight = register_parameter("weight", init_normal({vocab, dim_max}, 1.f, init), {fixed_width(vocab), dim_});
}

Tensor Embedding::forward(const Tensor& index, const ForwardContext& ctx) {
  return embedding(index, weight.prefix({-1, dim_(ctx.sub)}));
}

Tensor Dropout::forward(const Tensor& x, const ForwardContext& ctx) {
  if (!is_training() || p_ == 0.f) return x;
  SN_CHECK(ctx.gen != nullptr, "Dropout", "training needs a generator in the forward context");
  return dropout(x, p_, *ctx.gen, true);
}

Tensor ReLU::forward(const Tensor& x, const ForwardContext&) { return relu(x); }

void Sequential::add(const std::string& name, std::shared_ptr<Layer> layer) {
  layers_.push_back(register_module(name, std::move(layer)));
}

Tensor Sequential::forward(const Tensor& x, const ForwardContext& ctx) {
  const int64_t n = depth_ ? depth_(ctx.sub) : int64_t(layers_.size());
  SN_CHECK(n >= 0 && n <= int64_t(layers_.size()), "Sequential", "depth ", n, " of ", layers_.size(),
           " layers for sub-model ", ctx.sub.str());
  Tensor h = x;
  for (int64_t i = 0; i < n; ++i) h = layers_[size_t(i)]->forward(h, ctx);
  return h;
}

}  // namespace sn
