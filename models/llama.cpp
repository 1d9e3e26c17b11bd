// models/llama.cpp — W4 `fortunes-llama` (see llama.h).
#include "models/llama.h"

#include "autograd/ops.h"
#include "models/registry.h"

namespace sn {

SortedLlama::SortedLlama(const LlamaConfig& c, uint64_t seed) : config_(c) {
  SN_CHECK(!c.exits.empty() && c.exits.back() == c.layers, "fortunes-llama", "the last exit must be the full depth (",
           c.layers, ")");
  space_ = SubModelSpace({Axis{"depth", c.exits}});
  full_ = space_.at(space_.size() - 1);
  Generator init(seed);
  embedding_ = register_module("embedding", std::make_shared<Embedding>(c.vocab, c.dim, fixed_width(c.dim), init));
  AttentionOptions a;
  a.dim = c.dim;
  a.heads_max = c.heads;
  a.kv_heads_max = c.kv_heads;
  a.head_dim = c.head_dim;
  a.causal = true;
  a.bias = false;
  a.rope = true;
  for (int64_t b = 0; b < c.layers; ++b) {
    Active active = [b](const SubModel& s) { return s.get("depth") > b; };
    blocks_.push_back(register_module(
        "blocks." + std::to_string(b),
        std::make_shared<TransformerBlock>(a, fixed_width(c.heads), c.ffn, fixed_width(c.ffn), true, true, init, active)));
  }
  norm_ = register_module("norm", std::make_shared<RMSNorm>(c.dim, fixed_width(c.dim)));
  head_ = register_module("head", std::make_shared<Linear>(c.dim, c.vocab, fixed_width(c.dim), fixed_width(c.vocab),
                                                           init, false));
}

ForwardContext SortedLlama::full_context() const { return {full_, space_.size() - 1, nullptr}; }

Tensor SortedLlama::embed(const Tensor& tokens) {
  SN_CHECK(tokens.dim() == 2 && tokens.dtype() == DType::i64, "fortunes-llama", "expects tokens [B, T] (i64), got ",
           shape_str(tokens.sizes()));
  return embedding_->forward(tokens, full_context());
}

Tensor SortedLlama::run_blocks(const Tensor& h, int64_t from, int64_t to, std::vector<KvCache>& caches) {
  SN_CHECK(0 <= from && from <= to && to <= config_.layers && int64_t(caches.size()) == config_.layers,
           "fortunes-llama", "blocks [", from, ", ", to, ") with ", caches.size(), " caches");
  Tensor x = h;
  for (int64_t b = from; b < to; ++b) x = blocks_[size_t(b)]->forward_cached(x, full_context(), caches[size_t(b)]);
  return x;
}

Tensor SortedLlama::exit_logits(const Tensor& h) { return head_->forward(norm_->forward(h, full_context()), full_context()); }

Tensor SortedLlama::forward(const Tensor& tokens, const ForwardContext& ctx) {
  Tensor h = embed(tokens);
  const int64_t depth = ctx.sub.get("depth");
  for (int64_t b = 0; b < depth; ++b) h = blocks_[size_t(b)]->forward(h, ctx);
  return exit_logits(h);
}

std::vector<Tensor> SortedLlama::forward_exits(const Tensor& tokens) {
  std::vector<Tensor> out;
  Tensor h = embed(tokens);
  int64_t b = 0;
  for (int64_t exit : config_.exits) {
    for (; b < exit; ++b) h = blocks_[size_t(b)]->forward(h, full_context());
    out.push_back(exit_logits(h));
  }
  return out;
}

int64_t SortedLlama::flops(const SubModel& sub) const {
  const int64_t d = config_.dim, inner = config_.heads * config_.head_dim, T = config_.context;
  const int64_t kv_inner = config_.kv_heads > 0 ? config_.kv_heads * config_.head_dim : inner;
  const int64_t block = 2 * d * (2 * inner + 2 * kv_inner) + 2 * 2 * T / 2 * inner + 2 * 3 * d * config_.ffn;  // mean context T/2
  return sub.get("depth") * block + 2 * d * config_.vocab;
}

Tensor soft_loss(SortedLlama& model, const Tensor& tokens, const Tensor& targets) {
  SN_CHECK(targets.sizes() == tokens.sizes(), "soft_loss", "targets ", shape_str(targets.sizes()), " for tokens ",
           shape_str(tokens.sizes()));
  const int64_t V = model.config().vocab;
  std::vector<Tensor> exits = model.forward_exits(tokens);
  Tensor total;
  for (const Tensor& logits : exits) {
    Tensor ce = cross_entropy(logits.reshape({-1, V}), targets.reshape({-1}));
    total = total.defined() ? total + ce : ce;
  }
  return total * (1.f / float(exits.size()));
}

std::shared_ptr<Model> make_fortunes_llama(const ModelOptions& o) {
  LlamaConfig c;
  if (!o.dense.empty()) {  // the standalone network of one exit: that many blocks
    SubModelSpace space({Axis{"depth", c.exits}});
    c.layers = space.parse(o.dense).get("depth");
    c.exits = {c.layers};
  }
  return std::make_shared<SortedLlama>(c, o.seed);
}

}  // namespace sn
