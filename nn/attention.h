// nn/attention.h — transformer layers with sorted axes (DESIGN.md §1): attention keeps its first
// h heads, the feed-forward network its first k hidden units, the block stack its first d blocks.
#pragma once

#include "nn/layers.h"

namespace sn {

// Rotary position embedding of x [..., T, dh] (dh even): the pair (i, i + dh/2) of position
// offset + t is rotated by the angle (offset + t)·base^(-2i/dh). Differentiable; the angles are
// constants on x's device.
Tensor rope(const Tensor& x, int64_t offset = 0, float base = 10000.f);

// The additive causal mask of T new tokens after `past` cached ones, [T, past + T]: new token i
// sees keys 0 .. past + i (0), not the later ones (-inf).
Tensor causal_mask(int64_t T, Device device, int64_t past = 0);

// Whether a layer takes part in a sub-model (depth nesting); empty: always. An inactive layer's
// parameters have zero-sized windows, so the optimizer leaves them alone.
using Active = std::function<bool(const SubModel&)>;

struct AttentionOptions {
  int64_t dim = 0;        // model width (fixed)
  int64_t heads_max = 0;  // heads of the full model
  int64_t kv_heads_max = 0;  // grouped keys/values: heads_max / kv_heads_max query heads share one (0: none)
  int64_t head_dim = 0;
  bool causal = false;
  bool bias = true;
  bool rope = false;
};

// Keys and values one attention layer has seen: buffers [B, h_kv, capacity, dh] whose first
// length() positions are filled (h_kv = h without grouped heads). Appending writes in place and
// doubles the capacity when full; truncating only moves the length, so dropping rejected draft
// tokens costs nothing.
class KvCache {
 public:
  int64_t length() const { return length_; }
  int64_t capacity() const { return k_.defined() ? k_.size(2) : 0; }
  int64_t batch() const { return k_.defined() ? k_.size(0) : 0; }
  int64_t heads() const { return k_.defined() ? k_.size(1) : 0; }
  // The filled positions, [B, h_kv, length, dh]: views of the buffers.
  Tensor keys() const { return k_.narrow(2, 0, length_); }
  Tensor values() const { return v_.narrow(2, 0, length_); }
  // Appends positions [B, h_kv, T, dh] (constants: no graph).
  void append(const Tensor& k, const Tensor& v);
  void truncate(int64_t T);  // keep the first T positions (rejected draft tokens are dropped)

 private:
  Tensor k_, v_;
  int64_t length_ = 0;
};

// Multi-head self-attention over x [B, T, dim]. A sub-model uses heads(sub) heads: the first
// h·head_dim rows of the q, k, v projections and the first h·head_dim columns of the output one.
// With grouped keys and values (kv_heads_max < heads_max), query head i reads key/value head
// i / group (group = heads_max / kv_heads_max): h query heads use the first ceil(h / group) key
// and value heads, and the cache holds only those.
class MultiHeadAttention : public Layer {
 public:
  MultiHeadAttention(const AttentionOptions& options, Width heads, Generator& init, Active active = {});
  Tensor forward(const Tensor& x, const ForwardContext& ctx) override;
  // x holds the next tokens after those in `cache` (positions cache.length()...); their keys and
  // values are appended to the cache. Causal: each token sees the cache and the tokens before it.
  Tensor forward_cached(const Tensor& x, const ForwardContext& ctx, KvCache& cache);
  std::shared_ptr<Linear> q, k, v, o;

 private:
  Tensor attend(const Tensor& x, const ForwardContext& ctx, KvCache* cache);
  int64_t group() const { return options_.kv_heads_max > 0 ? options_.heads_max / options_.kv_heads_max : 1; }
  AttentionOptions options_;
  Width heads_;
};

// The feed-forward network: fc2(gelu(fc1 x)), or with SwiGLU down(silu(gate x) ⊙ up x). A
// sub-model uses the first hidden(sub) units.
class FeedForward : public Layer {
 public:
  FeedForward(int64_t dim, int64_t hidden_max, Width hidden, bool swiglu, bool bias, Generator& init,
              Active active = {});
  Tensor forward(const Tensor& x, const ForwardContext& ctx) override;

 private:
  bool swiglu_;
  std::shared_ptr<Linear> in_, gate_, out_;
};

// Pre-norm block: x + attn(norm(x)), then + ffn(norm(x)). LayerNorm, or RMSNorm when `rms`.
class TransformerBlock : public Layer {
 public:
  TransformerBlock(const AttentionOptions& attention, Width heads, int64_t hidden_max, Width hidden, bool swiglu,
                   bool rms, Generator& init, Active active = {});
  Tensor forward(const Tensor& x, const ForwardContext& ctx) override;
  Tensor forward_cached(const Tensor& x, const ForwardContext& ctx, KvCache& cache);

 private:
  std::shared_ptr<Layer> norm1_, norm2_;
  std::shared_ptr<MultiHeadAttention> attn_;
  std::shared_ptr<FeedForward> ffn_;
};

}  // namespace sn
