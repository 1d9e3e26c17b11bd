// A sorted model of our own, trained by sortednet's trainer on Fashion-MNIST.
//
// The layer `LowRankLinear` factors its weight as U·V with a sorted rank: a sub-model keeps the
// first r rank-one components (an axis `rank` that no built-in layer has). The model
//   784 → LowRankLinear(rank r) → ReLU → hidden h → Linear → 10
// nests over two axes, rank ∈ {8, 16, 32, 64} and width (hidden neurons) ∈ {64, 128, 192, 256}:
// 16 sub-models in one set of weights. Registering it by name makes it usable by the Trainer,
// checkpoints and evaluation like the built-in models.
//
//   custom_model [--steps N] [--data DIR] [--out DIR] [--train-limit N] [--test-limit N]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sortednet/sortednet.h>

namespace {

// y = x Vᵀ Uᵀ + b with V [rank_max, in] and U [out_max, rank_max]: under a sub-model only
// V[:r, :] and U[:out, :r] (and b[:out]) take part, so the gradients land in those windows.
class LowRankLinear : public sn::Layer {
 public:
  LowRankLinear(int64_t in, int64_t out_max, int64_t rank_max, sn::Width out, sn::Width rank, sn::Generator& init)
      : in_(in), out_(std::move(out)), rank_(std::move(rank)) {
    const float bound_v = 1.f / std::sqrt(float(in)), bound_u = 1.f / std::sqrt(float(rank_max));
    v_ = register_parameter("v", sn::affine(sn::rand({rank_max, in}, init), 2 * bound_v, -bound_v),
                            {rank_, sn::fixed_width(in)});
    u_ = register_parameter("u", sn::affine(sn::rand({out_max, rank_max}, init), 2 * bound_u, -bound_u),
                            {out_, rank_});
    b_ = register_parameter("b", sn::zeros({out_max}), {out_});
  }

  sn::Tensor forward(const sn::Tensor& x, const sn::ForwardContext& ctx) override {
    const int64_t r = rank_(ctx.sub), out = out_(ctx.sub);
    sn::Tensor low = sn::linear(x, v_.prefix({r, in_}));  // [batch, r]
    return sn::linear(low, u_.prefix({out, r}), b_.narrow(0, 0, out));
  }

 private:
  int64_t in_;
  sn::Width out_, rank_;
  sn::Tensor v_, u_, b_;
};

class LowRankMlp : public sn::Model {
 public:
  explicit LowRankMlp(const sn::ModelOptions& options) {
    space_ = sn::SubModelSpace({sn::Axis{"rank", {8, 16, 32, 64}}, sn::Axis{"width", {64, 128, 192, 256}}});
    sn::Generator init(options.seed);
    sn::Width hidden = sn::axis_width("width");
    fc1_ = register_module("fc1", std::make_shared<LowRankLinear>(kIn, kHidden, kRank, hidden,
                                                                  sn::axis_width("rank"), init));
    fc2_ = register_module("fc2", std::make_shared<sn::Linear>(kHidden, kClasses, hidden, sn::fixed_width(kClasses), init));
  }

  sn::Tensor forward(const sn::Tensor& x, const sn::ForwardContext& ctx) override {
    sn::Tensor h = sn::relu(fc1_->forward(x.reshape({x.size(0), kIn}), ctx));
    return fc2_->forward(h, ctx);
  }
  int64_t flops(const sn::SubModel& sub) const override {
    const int64_t r = sub.get("rank"), h = sub.get("width");
    return 2 * (kIn * r + r * h + h * kClasses);
  }
  sn::Shape input_shape() const override { return {1, 28, 28}; }
  int64_t classes() const override { return kClasses; }

 private:
  static constexpr int64_t kIn = 784, kHidden = 256, kRank = 64, kClasses = 10;
  std::shared_ptr<LowRankLinear> fc1_;
  std::shared_ptr<sn::Linear> fc2_;
};

}  // namespace

int main(int argc, char** argv) {
  sn::TrainConfig config;
  config.model = "lowrank-mlp";
  config.data_dir = "/usr/share/datasets/fashion-mnist";
  config.max_steps = 300;
  config.sampler = "sandwich";
  config.submodels_per_step = 3;
  config.optimizer = "adamw";
  config.lr = 2e-3;
  config.weight_decay = 0.01;
  config.warmup_steps = 20;
  config.log_every = 50;
  config.eval_batch_size = 1000;
  std::string out = "runs/custom_model";
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "error: %s needs a value (flags: --steps --data --out --train-limit --test-limit)\n", argv[i]);
      return 2;
    }
    const std::string value = argv[++i];
    if (flag == "--steps") config.max_steps = std::atoll(value.c_str());
    else if (flag == "--data") config.data_dir = value;
    else if (flag == "--out") out = value;
    else if (flag == "--train-limit") config.train_limit = std::atoll(value.c_str());
    else if (flag == "--test-limit") config.test_limit = std::atoll(value.c_str());
    else {
      std::fprintf(stderr, "error: unknown flag %s (flags: --steps --data --out --train-limit --test-limit)\n", argv[i - 1]);
      return 2;
    }
  }

  sn::register_model("lowrank-mlp", [](const sn::ModelOptions& o) { return std::make_shared<LowRankMlp>(o); });
  try {
    sn::Trainer trainer(config, out);
    std::vector<sn::EvalRow> rows = trainer.run();
    std::fputs(sn::format_table(rows).c_str(), stdout);
  } catch (const sn::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
