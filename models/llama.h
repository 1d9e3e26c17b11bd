// models/llama.h — W4 `fortunes-llama`: a byte-level decoder (RMSNorm, RoPE, SwiGLU, no biases)
// sorted along depth: every exit (after 2, 4, 6 or 8 blocks) applies the same final RMSNorm and
// output head. Besides the Model interface (logits of one exit), it exposes the pieces decoding
// needs: the embedding, a range of blocks run with key/value caches, and an exit's logits.
#pragma once

#include "models/model.h"
#include "nn/attention.h"

namespace sn {

struct LlamaConfig {
  int64_t vocab = 256, dim = 256, layers = 8, heads = 8, head_dim = 32, ffn = 688, context = 256;
  int64_t kv_heads = 0;  // grouped keys and values: heads / kv_heads query heads share one (0: none)
  std::vector<int64_t> exits = {2, 4, 6, 8};  // the `depth` axis
};

class SortedLlama final : public Model {
 public:
  explicit SortedLlama(const LlamaConfig& config, uint64_t seed = 0);
  // tokens [B, T] (i64) -> logits [B, T, vocab] at the exit of the sub-model's depth.
  Tensor forward(const Tensor& tokens, const ForwardContext& ctx) override;
  // The logits of every exit from one pass, shallowest first (the SoFT objective averages them).
  std::vector<Tensor> forward_exits(const Tensor& tokens);

  // Decoding. caches has one entry per block; blocks [from, to) read and extend theirs.
  Tensor embed(const Tensor& tokens);
  Tensor run_blocks(const Tensor& h, int64_t from, int64_t to, std::vector<KvCache>& caches);
  Tensor exit_logits(const Tensor& h);  // the shared final norm and head

  int64_t flops(const SubModel& sub) const override;  // per token
  Shape input_shape() const override { return {config_.context}; }
  int64_t classes() const override { return config_.vocab; }
  const LlamaConfig& config() const { return config_; }

 private:
  ForwardContext full_context() const;
  LlamaConfig config_;
  std::shared_ptr<Embedding> embedding_;
  std::vector<std::shared_ptr<TransformerBlock>> blocks_;
  std::shared_ptr<RMSNorm> norm_;
  std::shared_ptr<Linear> head_;
  SubModel full_;
};

// SoFT: the mean of every exit's next-token cross-entropy, from one forward pass (no extra
// passes per exit). tokens and targets [B, T] (i64).
Tensor soft_loss(SortedLlama& model, const Tensor& tokens, const Tensor& targets);

}  // namespace sn
