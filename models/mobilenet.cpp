// models/mobilenet.cpp — `fmnist-mobilenet`: a MobileNetV2-style network for 28×28 inputs with
// sorted channels and depth. Inverted residual blocks (1×1 expand ×4, depthwise 3×3, 1×1
// project, residual where shapes allow); stem 16, stages of (24, 32, 64) channels with up to
// (2, 3, 3) blocks (strides 1, 2, 2), a 1×1 head to 256, global average pool, FC → 10.
// Axes: width ∈ {1/4, 2/4, 3/4, 4/4} of every layer's channels, depth.s1 ∈ {1, 2},
// depth.s2, depth.s3 ∈ {1, 2, 3}: 72 sub-models.
#include "autograd/ops.h"
#include "models/registry.h"

namespace sn {
namespace {

constexpr int64_t kStem = 16, kHead = 256, kExpand = 4, kClasses = 10, kImage = 28;
constexpr int64_t kChannels[3] = {24, 32, 64};
constexpr int64_t kBlocks[3] = {2, 3, 3};
constexpr int64_t kStrides[3] = {1, 2, 2};

class InvertedResidual final : public Layer {
 public:
  InvertedResidual(int64_t in_max, int64_t out_max, Width in, Width out, Width hidden, int64_t stride,
                   BnStats bn, int64_t sets, Generator& init)
      : residual_(stride == 1 && in_max == out_max) {
    const int64_t hid_max = in_max * kExpand;
    expand_ = register_module("expand", std::make_shared<Conv2d>(in_max, hid_max, in, hidden, Conv2d::Options{1, 1, 0}, init));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(hid_max, hidden, bn, sets));
    depthwise_ = register_module("depthwise", std::make_shared<Conv2d>(hid_max, hid_max, hidden, hidden,
                                                                      Conv2d::Options{3, stride, 1, true}, init));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(hid_max, hidden, bn, sets));
    project_ = register_module("project", std::make_shared<Conv2d>(hid_max, out_max, hidden, out, Conv2d::Options{1, 1, 0}, init));
    bn3_ = register_module("bn3", std::make_shared<BatchNorm2d>(out_max, out, bn, sets));
  }

  Tensor forward(const Tensor& x, const ForwardContext& ctx) override {
    Tensor h = relu(bn1_->forward(expand_->forward(x, ctx), ctx));
    h = relu(bn2_->forward(depthwise_->forward(h, ctx), ctx));
    h = bn3_->forward(project_->forward(h, ctx), ctx);
    return residual_ ? h + x : h;
  }

  void batch_norms(std::vector<BatchNorm2d*>& out) { out.insert(out.end(), {bn1_.get(), bn2_.get(), bn3_.get()}); }

 private:
  bool residual_;
  std::shared_ptr<Conv2d> expand_, depthwise_, project_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_, bn3_;
};

class SortedMobileNet final : public Model {
 public:
  explicit SortedMobileNet(const ModelOptions& o) {
    space_ = SubModelSpace({Axis{"width", {1, 2, 3, 4}, 4}, Axis{"depth.s1", {1, 2}}, Axis{"depth.s2", {1, 2, 3}},
                            Axis{"depth.s3", {1, 2, 3}}});
    int64_t w = 4;  // quarters of the full width
    for (int s = 0; s < 3; ++s) blocks_[s] = kBlocks[s];
    if (!o.dense.empty()) {  // the standalone network of one sub-model: its sizes are the maxima
      SubModel d = space_.parse(o.dense);
      w = d.get("width");
      AxisList one{Axis{"width", {w}, 4}};
      for (int s = 0; s < 3; ++s) {
        const std::string name = "depth.s" + std::to_string(s + 1);
        blocks_[s] = d.get(name);
        one.push_back(Axis{name, {blocks_[s]}});
      }
      space_ = SubModelSpace(one);
    }
    stem_channels_ = kStem * w / 4;
    head_channels_ = kHead * w / 4;
    for (int s = 0; s < 3; ++s) channels_[s] = kChannels[s] * w / 4;
    const int64_t sets = space_.size();
    Generator init(o.seed);
    Width stem_w = axis_fraction("width", stem_channels_);
    stem_ = register_module("stem", std::make_shared<Conv2d>(1, stem_channels_, fixed_width(1), stem_w, Conv2d::Options{3, 1, 1}, init));
    stem_bn_ = register_module("stem_bn", std::make_shared<BatchNorm2d>(stem_channels_, stem_w, o.bn_stats, sets));
    bns_.push_back(stem_bn_.get());
    int64_t in_max = stem_channels_;
    Width in = stem_w;
    for (int s = 0; s < 3; ++s) {
      const std::string depth = "depth.s" + std::to_string(s + 1);
      auto stage = std::make_shared<Sequential>(axis_width(depth));
      Width out = axis_fraction("width", channels_[s]);
      for (int64_t b = 0; b < blocks_[s]; ++b) {
        auto active = [depth, b](const SubModel& sub) { return sub.get(depth) > b; };
        const int64_t block_in = b == 0 ? in_max : channels_[s];
        Width bin = b == 0 ? in : out;
        auto block = std::make_shared<InvertedResidual>(
            block_in, channels_[s], gated(bin, active), gated(out, active),
            gated(axis_fraction("width", block_in * kExpand), active), b == 0 ? kStrides[s] : 1, o.bn_stats, sets, init);
        block->batch_norms(bns_);
        stage->add("block" + std::to_string(b), block);
      }
      stages_.push_back(register_module("stage" + std::to_string(s + 1), stage));
      in_max = channels_[s];
      in = out;
    }
    Width head_w = axis_fraction("width", head_channels_);
    head_ = register_module("head", std::make_shared<Conv2d>(in_max, head_channels_, in, head_w, Conv2d::Options{1, 1, 0}, init));
    head_bn_ = register_module("head_bn", std::make_shared<BatchNorm2d>(head_channels_, head_w, o.bn_stats, sets));
    bns_.push_back(head_bn_.get());
    fc_ = register_module("fc", std::make_shared<Linear>(head_channels_, kClasses, head_w, fixed_width(kClasses), init));
  }

  Tensor forward(const Tensor& x, const ForwardContext& ctx) override {
    Tensor h = relu(stem_bn_->forward(stem_->forward(x, ctx), ctx));
    for (auto& stage : stages_) h = stage->forward(h, ctx);
    h = relu(head_bn_->forward(head_->forward(h, ctx), ctx));
    return fc_->forward(global_avg_pool2d(h), ctx);
  }

  int64_t flops(const SubModel& sub) const override {
    int64_t hw = kImage, c_in = sub.scaled("width", stem_channels_);
    int64_t total = 2 * hw * hw * c_in * 9;
    for (int s = 0; s < 3; ++s) {
      const int64_t c = sub.scaled("width", channels_[s]), depth = sub.get("depth.s" + std::to_string(s + 1));
      for (int64_t b = 0; b < depth; ++b) {
        const int64_t cin = b == 0 ? c_in : c, hid = cin * kExpand, stride = b == 0 ? kStrides[s] : 1;
        const int64_t out_hw = hw / stride;
        total += 2 * hw * hw * cin * hid + 2 * out_hw * out_hw * hid * 9 + 2 * out_hw * out_hw * hid * c;
        hw = out_hw;
      }
      c_in = c;
    }
    const int64_t head = sub.scaled("width", head_channels_);
    return total + 2 * hw * hw * c_in * head + 2 * head * kClasses;
  }
  Shape input_shape() const override { return {1, kImage, kImage}; }
  int64_t classes() const override { return kClasses; }
  std::vector<BatchNorm2d*> batch_norms() override { return bns_; }

 private:
  std::shared_ptr<Conv2d> stem_, head_;
  std::shared_ptr<BatchNorm2d> stem_bn_, head_bn_;
  std::vector<std::shared_ptr<Sequential>> stages_;
  std::shared_ptr<Linear> fc_;
  std::vector<BatchNorm2d*> bns_;
  int64_t stem_channels_, head_channels_, channels_[3], blocks_[3];  // the largest sub-model's sizes
};

}  // namespace

std::shared_ptr<Model> make_fmnist_mobilenet(const ModelOptions& o) { return std::make_shared<SortedMobileNet>(o); }

}  // namespace sn
