// models/resnet.cpp — W2 `fmnist-resnet`: a width × depth sorted ResNet (WORKLOADS.md).
// Stem conv3×3 1→32, three stages of up to 3 BasicBlocks with (32, 64, 128) channels, the first
// block of stages 2 and 3 strided with a conv1×1+BN shortcut, global average pool, FC → 10.
// Axes: width ∈ {1/8..8/8} of every stage's channels (stem included) and depth.s1..s3 ∈ {1,2,3}:
// 8 × 27 = 216 sub-models.
#include "autograd/ops.h"
#include "models/registry.h"

namespace sn {
namespace {

constexpr int64_t kStem = 32;
constexpr int64_t kStageChannels[3] = {32, 64, 128};
constexpr int64_t kBlocks = 3, kClasses = 10, kImage = 28;

class BasicBlock final : public Layer {
 public:
  BasicBlock(int64_t in_max, int64_t out_max, Width in, Width out, int64_t stride, BnStats bn,
             int64_t stat_sets, Generator& init) {
    conv1_ = register_module("conv1", std::make_shared<Conv2d>(in_max, out_max, in, out, Conv2d::Options{3, stride, 1}, init));
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(out_max, out, bn, stat_sets));
    conv2_ = register_module("conv2", std::make_shared<Conv2d>(out_max, out_max, out, out, Conv2d::Options{3, 1, 1}, init));
    bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(out_max, out, bn, stat_sets));
    if (stride != 1 || in_max != out_max) {
      shortcut_ = register_module("shortcut", std::make_shared<Conv2d>(in_max, out_max, in, out, Conv2d::Options{1, stride, 0}, init));
      shortcut_bn_ = register_module("shortcut_bn", std::make_shared<BatchNorm2d>(out_max, out, bn, stat_sets));
    }
  }

  Tensor forward(const Tensor& x, const ForwardContext& ctx) override {
    Tensor h = bn1_->forward_relu(conv1_->forward(x, ctx), ctx);
    h = conv2_->forward(h, ctx);
    Tensor skip = shortcut_ ? shortcut_bn_->forward(shortcut_->forward(x, ctx), ctx) : x;
    return bn2_->forward_relu(h, ctx, skip);  // relu(bn2(h) + skip)
  }

  void batch_norms(std::vector<BatchNorm2d*>& out) {
    for (auto* bn : {bn1_.get(), bn2_.get(), shortcut_bn_.get()})
      if (bn) out.push_back(bn);
  }

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_, shortcut_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_, shortcut_bn_;
};

class SortedResNet final : public Model {
 public:
  explicit SortedResNet(const ModelOptions& o) {
    AxisList axes{Axis{"width", {1, 2, 3, 4, 5, 6, 7, 8}, 8}};
    for (int s = 1; s <= 3; ++s) axes.push_back(Axis{"depth.s" + std::to_string(s), {1, 2, 3}});
    space_ = SubModelSpace(axes);
    stem_channels_ = kStem;
    for (int s = 0; s < 3; ++s) channels_[s] = kStageChannels[s], blocks_[s] = kBlocks;
    if (!o.dense.empty()) {  // the standalone network of one sub-model: its sizes are the maxima
      SubModel d = space_.parse(o.dense);
      const int64_t w = d.get("width");
      stem_channels_ = kStem * w / 8;
      AxisList one{Axis{"width", {w}, 8}};
      for (int s = 0; s < 3; ++s) {
        const std::string name = "depth.s" + std::to_string(s + 1);
        channels_[s] = kStageChannels[s] * w / 8;
        blocks_[s] = d.get(name);
        one.push_back(Axis{name, {blocks_[s]}});
      }
      space_ = SubModelSpace(one);
    }
    const int64_t sets = space_.size();
    Generator init(o.seed);
    Width stem_w = axis_fraction("width", stem_channels_);
    stem_ = register_module("stem", std::make_shared<Conv2d>(1, stem_channels_, fixed_width(1), stem_w, Conv2d::Options{3, 1, 1}, init));
    stem_bn_ = register_module("stem_bn", std::make_shared<BatchNorm2d>(stem_channels_, stem_w, o.bn_stats, sets));
    int64_t in_max = stem_channels_;
    Width in = stem_w;
    for (int s = 0; s < 3; ++s) {
      const std::string depth = "depth.s" + std::to_string(s + 1);
      auto stage = std::make_shared<Sequential>(axis_width(depth));
      const int64_t out_max = channels_[s];
      Width out = axis_fraction("width", out_max);
      for (int64_t b = 0; b < blocks_[s]; ++b) {
        // A block past the sub-model's depth uses none of its parameters.
        auto active = [depth, b](const SubModel& sub) { return sub.get(depth) > b; };
        auto block = std::make_shared<BasicBlock>(b == 0 ? in_max : out_max, out_max,
                                                  gated(b == 0 ? in : out, active), gated(out, active),
                                                  (b == 0 && s > 0) ? 2 : 1, o.bn_stats, sets, init);
        block->batch_norms(stage_bns_[s]);
        stage->add("block" + std::to_string(b), block);
      }
      stages_.push_back(register_module("stage" + std::to_string(s + 1), stage));
      in_max = out_max;
      in = out;
    }
    fc_ = register_module("fc", std::make_shared<Linear>(in_max, kClasses, in, fixed_width(kClasses), init));
    stage_bns_[0].insert(stage_bns_[0].begin(), stem_bn_.get());
    for (const auto& list : stage_bns_) bns_.insert(bns_.end(), list.begin(), list.end());
  }

  Tensor forward(const Tensor& x, const ForwardContext& ctx) override {
    Tensor h = x;
    for (int64_t s = 0; s < 3; ++s) h = forward_stage(s, h, ctx);
    return h;
  }

  // Stem and stage 1 (width, depth.s1), stage 2 (+ depth.s2), stage 3 and the head (+ depth.s3).
  std::vector<Stage> stages() override {
    auto axes = [](std::vector<std::string> names) {
      return [names](const SubModel& sub) {
        std::vector<int64_t> key;
        for (const std::string& n : names) key.push_back(sub.get(n));
        return key;
      };
    };
    return {{axes({"width", "depth.s1"}), stage_bns_[0]},
            {axes({"depth.s2"}), stage_bns_[1]},
            {axes({"depth.s3"}), stage_bns_[2]}};
  }

  Tensor forward_stage(int64_t s, const Tensor& h, const ForwardContext& ctx) override {
    SN_CHECK(s >= 0 && s < 3, "fmnist-resnet", "no stage ", s, " (stages 0-2)");
    if (s == 0) return stages_[0]->forward(stem_bn_->forward_relu(stem_->forward(h, ctx), ctx), ctx);
    if (s == 1) return stages_[1]->forward(h, ctx);
    return fc_->forward(global_avg_pool2d(stages_[2]->forward(h, ctx)), ctx);
  }

  int64_t flops(const SubModel& sub) const override {
    auto conv = [](int64_t hw, int64_t cout, int64_t cin, int64_t k) { return 2 * hw * hw * cout * cin * k * k; };
    int64_t c_in = sub.scaled("width", stem_channels_), hw = kImage;
    int64_t total = conv(hw, c_in, 1, 3);
    for (int s = 0; s < 3; ++s) {
      const int64_t c = sub.scaled("width", channels_[s]);
      if (s > 0) hw /= 2;
      const int64_t depth = sub.get("depth.s" + std::to_string(s + 1));
      total += conv(hw, c, c_in, 3) + conv(hw, c, c, 3);
      if (s > 0) total += conv(hw, c, c_in, 1);
      total += (depth - 1) * 2 * conv(hw, c, c, 3);
      c_in = c;
    }
    return total + 2 * c_in * kClasses;
  }
  Shape input_shape() const override { return {1, kImage, kImage}; }
  int64_t classes() const override { return kClasses; }
  std::vector<BatchNorm2d*> batch_norms() override { return bns_; }

 private:
  std::shared_ptr<Conv2d> stem_;
  std::shared_ptr<BatchNorm2d> stem_bn_;
  std::vector<std::shared_ptr<Sequential>> stages_;
  std::shared_ptr<Linear> fc_;
  std::vector<BatchNorm2d*> bns_, stage_bns_[3];
  int64_t stem_channels_, channels_[3], blocks_[3];  // the largest sub-model's sizes
};

}  // namespace

std::shared_ptr<Model> make_fmnist_resnet(const ModelOptions& o) { return std::make_shared<SortedResNet>(o); }

}  // namespace sn
