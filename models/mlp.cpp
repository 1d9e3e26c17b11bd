// models/mlp.cpp — W1 `fmnist-mlp`: 784 → H → H → 10 with ReLU, H = 1024; the axis `width`
// (128, 256, ..., 1024 neurons) keeps the first k neurons of both hidden layers.
#include "autograd/ops.h"
#include "models/registry.h"

namespace sn {
namespace {

class SortedMlp final : public Model {
 public:
  explicit SortedMlp(const ModelOptions& o) {
    std::vector<int64_t> widths;
    for (int64_t w = 128; w <= kHidden; w += 128) widths.push_back(w);
    space_ = SubModelSpace({Axis{"width", widths}});
    int64_t hidden = kHidden;
    if (!o.dense.empty()) {  // the standalone network of one sub-model
      hidden = space_.parse(o.dense).get("width");
      space_ = SubModelSpace({Axis{"width", {hidden}}});
    }
    Generator init(o.seed);
    Width h = axis_width("width");
    fc1_ = register_module("fc1", std::make_shared<Linear>(kIn, hidden, fixed_width(kIn), h, init));
    fc2_ = register_module("fc2", std::make_shared<Linear>(hidden, hidden, h, h, init));
    fc3_ = register_module("fc3", std::make_shared<Linear>(hidden, kOut, h, fixed_width(kOut), init));
  }

  Tensor forward(const Tensor& x, const ForwardContext& ctx) override {
    Tensor h = x.reshape({x.size(0), kIn});
    h = relu(fc1_->forward(h, ctx));
    h = relu(fc2_->forward(h, ctx));
    return fc3_->forward(h, ctx);
  }

  int64_t flops(const SubModel& sub) const override {
    int64_t w = sub.get("width");
    return 2 * (kIn * w + w * w + w * kOut);
  }
  Shape input_shape() const override { return {1, 28, 28}; }
  int64_t classes() const override { return kOut; }

 private:
  static constexpr int64_t kIn = 784, kHidden = 1024, kOut = 10;
  std::shared_ptr<Linear> fc1_, fc2_, fc3_;
};

}  // namespace

std::shared_ptr<Model> make_fmnist_mlp(const ModelOptions& o) { return std::make_shared<SortedMlp>(o); }

}  // namespace sn
