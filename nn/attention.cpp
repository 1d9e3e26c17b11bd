// nn/attention.cpp — sorted-head attention, RoPE, the feed-forward network and the pre-norm block.
#include "nn/attention.h"

#include <algorithm>

#include <cmath>
#include <limits>

#include "autograd/ops.h"
#include "core/grad_mode.h"

namespace sn {
namespace {
Width gate(Width w, const Active& active) { return active ? gated(std::move(w), active) : w; }
}  // namespace

Tensor rope(const Tensor& x, int64_t offset, float base) {
  SN_CHECK(x.dim() >= 2, "rope", "expects [..., T, dh], got ", shape_str(x.sizes()));
  const int64_t T = x.size(x.dim() - 2), dh = x.size(x.dim() - 1), half = dh / 2;
  SN_CHECK(dh % 2 == 0, "rope", "the head dim must be even, got ", dh);
  std::vector<float> cosines(size_t(T * dh)), sines(size_t(T * dh));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(offset + t) * std::pow(double(base), -2.0 * double(i) / double(dh));
      for (int64_t j : {i, i + half}) {
        cosines[size_t(t * dh + j)] = float(std::cos(angle));
        sines[size_t(t * dh + j)] = float(std::sin(angle));
      }
    }
  Tensor c = from_vector(cosines, {T, dh}).to(x.device()), s = from_vector(sines, {T, dh}).to(x.device());
  const int64_t last = x.dim() - 1;
  Tensor rotated = cat({-x.narrow(last, half, half), x.narrow(last, 0, half)}, last);  // (-x2, x1)
  return x * c + rotated * s;
}

Tensor causal_mask(int64_t T, Device device, int64_t past) {
  const int64_t S = past + T;
  std::vector<float> m(size_t(T * S), 0.f);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = past + i + 1; j < S; ++j) m[size_t(i * S + j)] = -std::numeric_limits<float>::infinity();
  return from_vector(m, {T, S}).to(device);
}

MultiHeadAttention::MultiHeadAttention(const AttentionOptions& o, Width heads, Generator& init, Active active)
    : options_(o), heads_(std::move(heads)) {
  SN_CHECK(o.dim > 0 && o.heads_max > 0 && o.head_dim > 0, "attention", "dim, heads and head_dim must be positive");
  SN_CHECK(o.kv_heads_max >= 0 && (o.kv_heads_max == 0 || o.heads_max % o.kv_heads_max == 0), "attention",
           "key/value heads (", o.kv_heads_max, ") must divide the heads (", o.heads_max, ")");
  const int64_t inner = o.heads_max * o.head_dim, dh = o.head_dim, g = group();
  Width h = heads_;
  Width rows = gate([h, dh](const SubModel& s) { return h(s) * dh; }, active);
  Width kv_rows = gate([h, dh, g](const SubModel& s) { return (h(s) + g - 1) / g * dh; }, active);
  Width dim = gate(fixed_width(o.dim), active);
  q = register_module("q", std::make_shared<Linear>(o.dim, inner, dim, rows, init, o.bias));
  k = register_module("k", std::make_shared<Linear>(o.dim, inner / g, dim, kv_rows, init, o.bias));
  v = register_module("v", std::make_shared<Linear>(o.dim, inner / g, dim, kv_rows, init, o.bias));
  this->o = register_module("o", std::make_shared<Linear>(inner, o.dim, rows, dim, init, o.bias));
}

void KvCache::append(const Tensor& k, const Tensor& v) {
  NoGradGuard no_grad;
  SN_CHECK(k.dim() == 4 && v.sizes() == k.sizes(), "kv_cache", "appends keys and values [B, h, T, dh], got ",
           shape_str(k.sizes()), " and ", shape_str(v.sizes()));
  const int64_t T = k.size(2);
  const bool same_rows = k_.defined() && k_.size(0) == k.size(0) && k_.size(1) == k.size(1) && k_.size(3) == k.size(3);
  SN_CHECK(length_ == 0 || same_rows, "kv_cache", "holds [", batch(), ", ", heads(), ", ", length_, ", ",
           k_.defined() ? k_.size(3) : 0, "], cannot append ", shape_str(k.sizes()));
  if (!same_rows || length_ + T > capacity()) {  // grow: a larger buffer, the filled part copied once
    Shape sizes = k.sizes();
    sizes[2] = std::max({int64_t(64), same_rows ? 2 * capacity() : 0, length_ + T});
    Tensor k_new = empty(sizes, k.dtype(), k.device()), v_new = empty(sizes, v.dtype(), v.device());
    if (length_ > 0) {
      k_new.narrow(2, 0, length_).copy_(keys());
      v_new.narrow(2, 0, length_).copy_(values());
    }
    k_ = k_new;
    v_ = v_new;
  }
  k_.narrow(2, length_, T).copy_(k);
  v_.narrow(2, length_, T).copy_(v);
  length_ += T;
}

void KvCache::truncate(int64_t T) { length_ = std::clamp<int64_t>(T, 0, length_); }

Tensor MultiHeadAttention::forward(const Tensor& x, const ForwardContext& ctx) { return attend(x, ctx, nullptr); }

Tensor MultiHeadAttention::forward_cached(const Tensor& x, const ForwardContext& ctx, KvCache& cache) {
  return attend(x, ctx, &cache);
}

Tensor MultiHeadAttention::attend(const Tensor& x, const ForwardContext& ctx, KvCache* cache) {
  SN_CHECK(x.dim() == 3 && x.size(2) == options_.dim, "attention", "expects [B, T, ", options_.dim, "], got ",
           shape_str(x.sizes()));
  const int64_t B = x.size(0), T = x.size(1), h = heads_(ctx.sub), dh = options_.head_dim;
  SN_CHECK(h >= 1 && h <= options_.heads_max, "attention", "sub-model ", ctx.sub.str(), " asks for ", h, " of ",
           options_.heads_max, " heads");
  const int64_t g = group(), kvh = (h + g - 1) / g;
  // [B, T, n·dh] -> [B, n, T, dh]: each head a batch of its own.
  auto heads_of = [&](const Tensor& t, int64_t n) { return t.view({B, T, n, dh}).permute({0, 2, 1, 3}); };
  Tensor qh = heads_of(q->forward(x, ctx), h), kh = heads_of(k->forward(x, ctx), kvh),
         vh = heads_of(v->forward(x, ctx), kvh);
  const int64_t past = cache ? cache->length() : 0;
  if (options_.rope) {
    qh = rope(qh, past);
    kh = rope(kh, past);
  }
  if (cache) {  // decoding: the new keys and values join the cache (constants, no graph)
    SN_CHECK(past == 0 || (cache->batch() == B && cache->heads() == kvh), "attention", "the cache holds ",
             cache->heads(), " heads of ", cache->batch(), " sequences, the call ", kvh, " of ", B);
    cache->append(kh.detach(), vh.detach());
    kh = cache->keys();
    vh = cache->values();
  }
  const int64_t S = past + T;  // keys: the cached positions, then the new ones
  if (g > 1) {  // each key/value head serves the next `group` query heads
    auto spread = [&](const Tensor& t) {
      std::vector<Tensor> per_query;
      for (int64_t i = 0; i < h; ++i) per_query.push_back(t.narrow(1, i / g, 1));
      return cat(per_query, 1);
    };
    kh = spread(kh);
    vh = spread(vh);
  }
  qh = qh.reshape({B * h, T, dh});
  kh = kh.reshape({B * h, S, dh});
  vh = vh.reshape({B * h, S, dh});
  Tensor scores = matmul(qh, kh.transpose(1, 2), 1.f / std::sqrt(float(dh)));  // the scale rides on the GEMM
  if (options_.causal && T > 1) scores = scores + causal_mask(T, x.device(), past);  // one new token sees all
  Tensor out = matmul(softmax(scores, -1), vh);                                 // [B·h, T, dh]
  out = out.view({B, h, T, dh}).permute({0, 2, 1, 3}).reshape({B, T, h * dh});  // heads side by side
  return o->forward(out, ctx);
}

FeedForward::FeedForward(int64_t dim, int64_t hidden_max, Width hidden, bool swiglu, bool bias, Generator& init,
                         Active active)
    : swiglu_(swiglu) {
  Width d = gate(fixed_width(dim), active), k = gate(std::move(hidden), active);
  in_ = register_module(swiglu ? "up" : "fc1", std::make_shared<Linear>(dim, hidden_max, d, k, init, bias));
  if (swiglu) gate_ = register_module("gate", std::make_shared<Linear>(dim, hidden_max, d, k, init, bias));
  out_ = register_module(swiglu ? "down" : "fc2", std::make_shared<Linear>(hidden_max, dim, k, d, init, bias));
}

Tensor FeedForward::forward(const Tensor& x, const ForwardContext& ctx) {
  Tensor h = swiglu_ ? silu(gate_->forward(x, ctx)) * in_->forward(x, ctx) : gelu(in_->forward(x, ctx));
  return out_->forward(h, ctx);
}

TransformerBlock::TransformerBlock(const AttentionOptions& attention, Width heads, int64_t hidden_max, Width hidden,
                                   bool swiglu, bool rms, Generator& init, Active active) {
  auto norm = [&]() -> std::shared_ptr<Layer> {
    Width d = gate(fixed_width(attention.dim), active);
    if (rms) return std::make_shared<RMSNorm>(attention.dim, d);
    return std::make_shared<LayerNorm>(attention.dim, d);
  };
  norm1_ = register_module("norm1", norm());
  attn_ = register_module("attn", std::make_shared<MultiHeadAttention>(attention, std::move(heads), init, active));
  norm2_ = register_module("norm2", norm());
  ffn_ = register_module("ffn", std::make_shared<FeedForward>(attention.dim, hidden_max, std::move(hidden), swiglu,
                                                             attention.bias, init, active));
}

Tensor TransformerBlock::forward(const Tensor& x, const ForwardContext& ctx) {
  Tensor h = x + attn_->forward(norm1_->forward(x, ctx), ctx);
  return h + ffn_->forward(norm2_->forward(h, ctx), ctx);
}

Tensor TransformerBlock::forward_cached(const Tensor& x, const ForwardContext& ctx, KvCache& cache) {
  Tensor h = x + attn_->forward_cached(norm1_->forward(x, ctx), ctx, cache);
  return h + ffn_->forward(norm2_->forward(h, ctx), ctx);
}

}  // namespace sn
