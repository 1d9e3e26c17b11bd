// models/vit.cpp — W3 `fmnist-vit`: a pre-norm transformer encoder over 4×4 patches (49 tokens and
// a CLS token, width 192, 6 blocks of 6 heads × 32 and an MLP of 768 with GELU). Sorted axes:
// `depth` (the first 1..6 blocks), `heads` (the first 2, 4 or 6 heads of every block) and `ffn`
// (the first 192..768 hidden units of every MLP): 72 sub-models. Every depth exit applies the
// same final LayerNorm and classifier to the CLS token.
#include <cmath>

#include "autograd/ops.h"
#include "models/registry.h"
#include "nn/attention.h"

namespace sn {
namespace {

class SortedVit final : public Model {
 public:
  explicit SortedVit(const ModelOptions& o) {
    AxisList axes{Axis{"depth", {1, 2, 3, 4, 5, 6}}, Axis{"heads", {2, 4, 6}}, Axis{"ffn", {192, 384, 576, 768}}};
    space_ = SubModelSpace(axes);
    int64_t depth = kDepth, heads = kHeads, ffn = kFfn;
    if (!o.dense.empty()) {  // the standalone network of one sub-model: its sizes are the maxima
      const SubModel d = space_.parse(o.dense);
      depth = d.get("depth"), heads = d.get("heads"), ffn = d.get("ffn");
      space_ = SubModelSpace({Axis{"depth", {depth}}, Axis{"heads", {heads}}, Axis{"ffn", {ffn}}});
    }
    Generator init(o.seed);
    patch_ = register_module("patch", std::make_shared<Linear>(kPatch * kPatch, kDim, fixed_width(kPatch * kPatch),
                                                               fixed_width(kDim), init));
    cls_ = register_parameter("cls", init_normal({1, 1, kDim}, 0.02f, init));
    pos_ = register_parameter("pos", init_normal({kTokens + 1, kDim}, 0.02f, init));
    AttentionOptions a;
    a.dim = kDim;
    a.heads_max = heads;
    a.head_dim = kHeadDim;
    blocks_ = register_module("blocks", std::make_shared<Sequential>(axis_width("depth")));
    for (int64_t b = 0; b < depth; ++b) {
      Active active = [b](const SubModel& s) { return s.get("depth") > b; };  // blocks past the depth: unused
      blocks_->add(std::to_string(b), std::make_shared<TransformerBlock>(a, axis_width("heads"), ffn, axis_width("ffn"),
                                                                        false, false, init, active));
    }
    norm_ = register_module("norm", std::make_shared<LayerNorm>(kDim, fixed_width(kDim)));
    head_ = register_module("head", std::make_shared<Linear>(kDim, kClasses, fixed_width(kDim), fixed_width(kClasses), init));
  }

  Tensor forward(const Tensor& x, const ForwardContext& ctx) override {
    return head_->forward(norm_->forward(blocks_->forward(embed(x, ctx), ctx).select(1, 0), ctx), ctx);
  }

  // The embedding and block 0 (heads, ffn), then block b for b = 1.. (whether depth > b: a
  // shallower sub-model passes its input on), then the final norm and the head: every depth of
  // one (heads, ffn) shares the blocks below it.
  std::vector<Stage> stages() override {
    std::vector<Stage> out{{[](const SubModel& s) { return std::vector<int64_t>{s.get("heads"), s.get("ffn")}; }, {}}};
    for (int64_t b = 1; b < int64_t(blocks_->size()); ++b)
      out.push_back({[b](const SubModel& s) { return std::vector<int64_t>{s.get("depth") > b}; }, {}});
    out.push_back({[](const SubModel&) { return std::vector<int64_t>{}; }, {}});
    return out;
  }

  Tensor forward_stage(int64_t s, const Tensor& h, const ForwardContext& ctx) override {
    const int64_t blocks = int64_t(blocks_->size());
    SN_CHECK(s >= 0 && s <= blocks, "fmnist-vit", "no stage ", s, " (stages 0-", blocks, ")");
    if (s == 0) return (*blocks_)[0].forward(embed(h, ctx), ctx);
    if (s < blocks) return ctx.sub.get("depth") > s ? (*blocks_)[size_t(s)].forward(h, ctx) : h;
    return head_->forward(norm_->forward(h.select(1, 0), ctx), ctx);
  }

  int64_t flops(const SubModel& sub) const override {
    const int64_t T = kTokens + 1, h = sub.get("heads"), k = sub.get("ffn"), inner = h * kHeadDim;
    const int64_t block = 2 * T * kDim * inner * 4 + 2 * 2 * T * T * inner + 2 * 2 * T * kDim * k;
    return 2 * kTokens * kPatch * kPatch * kDim + sub.get("depth") * block + 2 * kDim * kClasses;
  }
  Shape input_shape() const override { return {1, kImage, kImage}; }
  int64_t classes() const override { return kClasses; }

 private:
  // The tokens: the CLS token, then the patches' embeddings, plus the position embeddings.
  Tensor embed(const Tensor& x, const ForwardContext& ctx) {
    const int64_t N = x.size(0), grid = kImage / kPatch;
    // [N, 1, 28, 28] -> [N, 49, 16]: patch (py, px) holds rows py·4.., columns px·4...
    Tensor patches = x.reshape({N, grid, kPatch, grid, kPatch}).permute({0, 1, 3, 2, 4}).reshape({N, kTokens, kPatch * kPatch});
    Tensor cls = zeros({N, 1, kDim}, DType::f32, x.device()) + cls_;  // broadcast: its gradient sums over N
    return cat({cls, patch_->forward(patches, ctx)}, 1) + pos_;
  }

  static constexpr int64_t kImage = 28, kPatch = 4, kTokens = 49, kDim = 192, kDepth = 6, kHeads = 6,
                           kHeadDim = 32, kFfn = 768, kClasses = 10;
  std::shared_ptr<Linear> patch_, head_;
  std::shared_ptr<Sequential> blocks_;
  std::shared_ptr<LayerNorm> norm_;
  Tensor cls_, pos_;
};

}  // namespace

std::shared_ptr<Model> make_fmnist_vit(const ModelOptions& o) { return std::make_shared<SortedVit>(o); }

}  // namespace sn
