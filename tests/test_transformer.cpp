// tests/test_transformer.cpp — sorted-head attention, RoPE, the causal mask, the feed-forward
// network, W3 `fmnist-vit`, and the W4 decoder (KV cache, SoFT, greedy and self-speculative
// decoding), against plain references and finite differences.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <fstream>

#include "core/grad_mode.h"
#include "kernels/cpu/gemm_invariant.h"
#include "models/decoding.h"
#include "models/llama.h"
#include "models/model.h"
#include "nn/attention.h"
#include "test_util.h"
#include "train/lm.h"
#include "train/optimizer.h"
#include "train/text_data.h"

namespace sn {
namespace {

using testing::random_tensor;

struct Heads {
  SubModelSpace space{AxisList{Axis{"heads", {1, 2, 3, 4}}}};
  SubModel sub(int64_t h) const { return space.parse("heads=" + std::to_string(h)); }
};

std::vector<double> values(const Tensor& t) {
  std::vector<float> v = to_vector<float>(t.contiguous());
  return std::vector<double>(v.begin(), v.end());
}

// Attention of the first h heads computed element by element in double from the module's weights;
// with grouped keys and values, query head i reads key/value head i / group.
std::vector<double> reference_attention(MultiHeadAttention& m, const Tensor& x, int64_t h, int64_t dh, bool causal,
                                        int64_t group = 1) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2), inner = m.q->weight.size(0);
  auto X = values(x), Wq = values(m.q->weight), Wk = values(m.k->weight), Wv = values(m.v->weight),
       Wo = values(m.o->weight), bq = values(m.q->bias), bk = values(m.k->bias), bv = values(m.v->bias),
       bo = values(m.o->bias);
  auto project = [&](const std::vector<double>& W, const std::vector<double>& bias, int64_t b, int64_t t, int64_t row) {
    double s = bias[size_t(row)];
    for (int64_t d = 0; d < D; ++d) s += W[size_t(row * D + d)] * X[size_t((b * T + t) * D + d)];
    return s;
  };
  std::vector<double> out(size_t(B * T * D), 0.0);
  for (int64_t b = 0; b < B; ++b) {
    std::vector<double> heads(size_t(T * h * dh), 0.0);  // [T, h·dh]
    for (int64_t hd = 0; hd < h; ++hd)
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> p(size_t(T), 0.0);
        double mx = -INFINITY;
        for (int64_t u = 0; u < T; ++u) {
          if (causal && u > t) continue;
          double s = 0.0;
          for (int64_t e = 0; e < dh; ++e)
            s += project(Wq, bq, b, t, hd * dh + e) * project(Wk, bk, b, u, hd / group * dh + e);
          p[size_t(u)] = s / std::sqrt(double(dh));
          mx = std::max(mx, p[size_t(u)]);
        }
        double z = 0.0;
        for (int64_t u = 0; u < T; ++u) z += (causal && u > t) ? 0.0 : std::exp(p[size_t(u)] - mx);
        for (int64_t e = 0; e < dh; ++e) {
          double acc = 0.0;
          for (int64_t u = 0; u < T; ++u)
            if (!(causal && u > t)) acc += std::exp(p[size_t(u)] - mx) / z * project(Wv, bv, b, u, hd / group * dh + e);
          heads[size_t(t * h * dh + hd * dh + e)] = acc;
        }
      }
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < D; ++d) {
        double s = bo[size_t(d)];
        for (int64_t j = 0; j < h * dh; ++j) s += Wo[size_t(d * inner + j)] * heads[size_t(t * h * dh + j)];
        out[size_t((b * T + t) * D + d)] = s;
      }
  }
  return out;
}

void expect_near(const std::vector<float>& a, const std::vector<double>& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol * std::max(1.0, std::fabs(b[i]))) << what << " " << i;
}

TEST(Attention, SortedHeadsEqualTheReferenceOfTheFirstHeads) {
  Heads hs;
  Generator init(3);
  AttentionOptions o;
  o.dim = 8;
  o.heads_max = 3;
  o.head_dim = 4;
  for (bool causal : {false, true}) {
    o.causal = causal;
    MultiHeadAttention attn(o, axis_width("heads"), init);
    Tensor x = random_tensor({2, 5, 8}, 10);
    for (int64_t h : {1, 2, 3}) {
      const SubModel sub = hs.sub(h);
      NoGradGuard no_grad;
      Tensor y = attn.forward(x, {sub, hs.space.index_of(sub), nullptr});
      expect_near(to_vector<float>(y), reference_attention(attn, x, h, 4, causal), 1e-5,
                  std::string(causal ? "causal" : "full") + " h=" + std::to_string(h));
    }
  }
}

TEST(Attention, GroupedKeyValueHeadsServeTheirQueryHeads) {
  Heads hs;
  Generator init(6);
  AttentionOptions o;
  o.dim = 8;
  o.heads_max = 4;
  o.kv_heads_max = 2;  // query heads 0, 1 read key/value head 0; heads 2, 3 head 1
  o.head_dim = 3;
  for (bool causal : {false, true}) {
    o.causal = causal;
    MultiHeadAttention attn(o, axis_width("heads"), init);
    EXPECT_EQ(attn.k->weight.size(0), 6);  // 2 key heads of 3
    Tensor x = random_tensor({2, 5, 8}, 13);
    for (int64_t h : {1, 2, 3, 4}) {
      const SubModel sub = hs.sub(h);
      NoGradGuard no_grad;
      Tensor y = attn.forward(x, {sub, hs.space.index_of(sub), nullptr});
      expect_near(to_vector<float>(y), reference_attention(attn, x, h, 3, causal, 2), 1e-5,
                  std::string(causal ? "causal" : "full") + " h=" + std::to_string(h));
    }
    // h = 3 uses both key/value heads, h = 2 only the first: the window of k's rows follows.
    for (auto& [name, p] : attn.named_parameters()) {
      if (name != "k.weight" && name != "v.weight") continue;
      EXPECT_EQ(p->active_shape(hs.sub(3))[0], 6) << name;
      EXPECT_EQ(p->active_shape(hs.sub(2))[0], 3) << name;
    }
  }
  o.kv_heads_max = 3;
  EXPECT_THROW(MultiHeadAttention(o, axis_width("heads"), init), Error);  // 3 does not divide 4
  // The gradient reaches each key/value head from every query head it serves.
  o.kv_heads_max = 2;
  o.dim = 4;
  o.head_dim = 2;
  o.rope = true;
  MultiHeadAttention small(o, axis_width("heads"), init);
  Tensor x = testing::leaf(random_tensor({1, 3, 4}, 14));
  const SubModel sub = hs.sub(3);
  testing::expect_gradcheck([&](const std::vector<Tensor>& in) { return small.forward(in[0], {sub, 2, nullptr}); },
                            {x, small.q->weight, small.k->weight, small.v->weight, small.o->weight});
}

TEST(KvCache, AppendsInPlaceGrowsAndTruncatesByLength) {
  KvCache cache;
  Tensor a = random_tensor({1, 2, 50, 4}, 20), b = random_tensor({1, 2, 30, 4}, 21), c = random_tensor({1, 2, 5, 4}, 22);
  cache.append(a, a * 2.f);
  EXPECT_EQ(cache.capacity(), 64);
  cache.append(b, b * 2.f);  // 80 positions: the buffer grew, the first 50 were kept
  EXPECT_EQ(cache.length(), 80);
  EXPECT_GE(cache.capacity(), 128);
  EXPECT_EQ(to_vector<float>(cache.keys().contiguous()), to_vector<float>(cat({a, b}, 2)));
  EXPECT_EQ(to_vector<float>(cache.values().contiguous()), to_vector<float>(cat({a, b}, 2) * 2.f));
  cache.truncate(40);  // drop positions 40..79; the next append overwrites them
  cache.append(c, c);
  EXPECT_EQ(cache.length(), 45);
  EXPECT_EQ(to_vector<float>(cache.keys().contiguous()), to_vector<float>(cat({a.narrow(2, 0, 40), c}, 2)));
}

// A decoder's attention: causal, with rotary positions.
AttentionOptions causal_rope_attention(int64_t dim, int64_t heads, int64_t head_dim, int64_t kv_heads = 0) {
  AttentionOptions o;
  o.dim = dim;
  o.heads_max = heads;
  o.head_dim = head_dim;
  o.kv_heads_max = kv_heads;
  o.causal = true;
  o.rope = true;
  return o;
}

// Decoding's cached attention equals the uncached pass over the whole sequence for every number of
// heads (fewer than the maximum, and with grouped key/value heads a number that is not a multiple
// of the group), two sequences at once, new positions in chunks of 1 to 7, and past 64 positions,
// where the cache grows; the cache holds only the key/value heads the sub-model uses.
TEST(Attention, CachedEqualsUncachedForAnyHeadsBatchAndLength) {
  Heads hs;
  Generator init(7);
  MultiHeadAttention attn(causal_rope_attention(8, 4, 2, 2), axis_width("heads"), init);
  const int64_t T = 70;
  Tensor x = random_tensor({2, T, 8}, 15);
  NoGradGuard no_grad;
  for (int64_t h : {1, 2, 3, 4}) {
    const SubModel sub = hs.sub(h);
    const ForwardContext ctx{sub, hs.space.index_of(sub), nullptr};
    const std::vector<float> whole = to_vector<float>(attn.forward(x, ctx));
    KvCache cache;
    std::vector<Tensor> parts;
    int64_t at = 0;
    for (int64_t chunk = 5; at < T; chunk = chunk % 7 + 1) {
      const int64_t n = std::min(chunk, T - at);
      parts.push_back(attn.forward_cached(x.narrow(1, at, n), ctx, cache));
      at += n;
    }
    testing::expect_close(to_vector<float>(cat(parts, 1)), whole, 1e-5f, ("h=" + std::to_string(h)).c_str());
    EXPECT_EQ(cache.length(), T);
    EXPECT_GE(cache.capacity(), 128);      // grew past its first 64 positions
    EXPECT_EQ(cache.heads(), (h + 1) / 2);  // ceil(h / group)
    EXPECT_EQ(cache.batch(), 2);
  }
}

TEST(Attention, CausalOutputsIgnoreLaterTokens) {
  Heads hs;
  Generator init(4);
  MultiHeadAttention attn(causal_rope_attention(8, 2, 4), axis_width("heads"), init);
  Tensor x = random_tensor({1, 6, 8}, 11);
  Tensor changed = x.clone();
  changed.narrow(1, 4, 2).copy_(random_tensor({1, 2, 8}, 12));  // tokens 4 and 5 differ
  NoGradGuard no_grad;
  const SubModel sub = hs.sub(2);
  std::vector<float> a = to_vector<float>(attn.forward(x, {sub, 1, nullptr}).narrow(1, 0, 4).contiguous());
  std::vector<float> b = to_vector<float>(attn.forward(changed, {sub, 1, nullptr}).narrow(1, 0, 4).contiguous());
  EXPECT_EQ(a, b);
  std::vector<float> c = to_vector<float>(attn.forward(x, {sub, 1, nullptr}).narrow(1, 4, 2).contiguous());
  std::vector<float> d = to_vector<float>(attn.forward(changed, {sub, 1, nullptr}).narrow(1, 4, 2).contiguous());
  EXPECT_NE(c, d);
}

TEST(Rope, RotatesPairsByPositionAndKeepsRelativeAngles) {
  Tensor q = random_tensor({1, 4, 6}, 20), k = random_tensor({1, 4, 6}, 21);
  // Direct formula for position 3, pair (1, 4): angle 3·10000^(-2/6).
  std::vector<float> r = to_vector<float>(rope(q).contiguous()), qv = to_vector<float>(q);
  const double angle = 3.0 * std::pow(10000.0, -2.0 / 6.0);
  const double a = qv[3 * 6 + 1], b = qv[3 * 6 + 4];
  EXPECT_NEAR(r[3 * 6 + 1], a * std::cos(angle) - b * std::sin(angle), 1e-5);
  EXPECT_NEAR(r[3 * 6 + 4], b * std::cos(angle) + a * std::sin(angle), 1e-5);
  // Norms are kept; scores depend only on the distance between positions.
  EXPECT_NEAR(sum(square(rope(q))).item(), sum(square(q)).item(), 1e-4);
  auto score = [&](int64_t qpos, int64_t kpos) {
    Tensor qr = rope(q.narrow(1, 0, 1), qpos), kr = rope(k.narrow(1, 0, 1), kpos);
    return double(sum(qr * kr).item());
  };
  EXPECT_NEAR(score(5, 2), score(105, 102), 1e-4);
  EXPECT_NEAR(score(0, 7), score(30, 37), 1e-4);
}

TEST(Attention, GradientsOfInputAndWeightWindowsMatchFiniteDifferences) {
  Heads hs;
  Generator init(5);
  MultiHeadAttention attn(causal_rope_attention(6, 3, 2), axis_width("heads"), init);
  const SubModel sub = hs.sub(2);  // 2 of 3 heads: the third head's rows must get zero gradient
  Tensor x = testing::leaf(random_tensor({2, 3, 6}, 30));
  testing::expect_gradcheck(
      [&](const std::vector<Tensor>& in) { return attn.forward(in[0], {sub, 1, nullptr}); },
      {x, attn.q->weight, attn.k->weight, attn.v->weight, attn.o->weight});
}

TEST(FeedForward, SwigluAndGeluUseTheFirstHiddenUnits) {
  SubModelSpace space{AxisList{Axis{"ffn", {3, 5}}}};
  Generator init(6);
  for (bool swiglu : {false, true}) {
    FeedForward ffn(4, 5, axis_width("ffn"), swiglu, true, init);
    const SubModel small = space.parse("ffn=3");
    Tensor x = testing::leaf(random_tensor({2, 4}, 40));
    testing::expect_gradcheck([&](const std::vector<Tensor>& in) { return ffn.forward(in[0], {small, 0, nullptr}); },
                              {x});
    auto params = ffn.named_parameters();
    for (auto& [name, p] : params) {
      const Shape a = p->active_shape(small);
      for (size_t d = 0; d < a.size(); ++d) {
        if (p->tensor.size(int64_t(d)) == 5) {
          EXPECT_EQ(a[d], 3) << name;  // the hidden dim is cut to 3
        }
      }
    }
  }
}

TEST(Vit, SpaceShapesAndNestedParameters) {
  auto model = make_model({"fmnist-vit", BnStats::per_submodel, 0});
  const SubModelSpace& space = model->space();
  EXPECT_EQ(space.size(), 72);
  Tensor x = random_tensor({3, 1, 28, 28}, 50);
  NoGradGuard no_grad;
  int64_t last_params = -1, last_flops = -1;
  for (const char* spec : {"depth=1,heads=2,ffn=192", "depth=3,heads=4,ffn=384", "depth=6,heads=6,ffn=768"}) {
    const SubModel sub = space.parse(spec);
    Tensor y = model->forward(x, {sub, space.index_of(sub), nullptr});
    EXPECT_EQ(y.sizes(), Shape({3, 10})) << spec;
    EXPECT_GT(model->parameter_count(sub), last_params) << spec;
    EXPECT_GT(model->flops(sub), last_flops) << spec;
    last_params = model->parameter_count(sub);
    last_flops = model->flops(sub);
  }
  // Blocks past a sub-model's depth have empty windows (the optimizer leaves them alone), the
  // shared final norm and head are whole in every sub-model.
  const SubModel shallow = space.parse("depth=2,heads=6,ffn=768");
  for (auto& [name, p] : model->named_parameters()) {
    const int64_t n = numel_of(p->active_shape(shallow));
    if (name.rfind("blocks.2.", 0) == 0 || name.rfind("blocks.5.", 0) == 0) {
      EXPECT_EQ(n, 0) << name;
    }
    if (name.rfind("head.", 0) == 0 || name.rfind("norm.", 0) == 0) {
      EXPECT_EQ(n, p->tensor.numel()) << name;
    }
  }
}

TEST(Vit, EverySubModelLearnsAFixedBatch) {
  auto model = make_model({"fmnist-vit", BnStats::per_submodel, 1});
  OptimizerConfig oc;
  oc.name = "adamw";
  oc.weight_decay = 0.f;
  Optimizer opt(*model, oc);
  Tensor x = random_tensor({16, 1, 28, 28}, 60);
  std::vector<int64_t> labels(16);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = int64_t(i % 10);
  Tensor y = from_vector(labels, {16});
  const SubModelSpace& space = model->space();
  const SubModel full = space.at(space.size() - 1), small = space.at(0);
  auto loss_of = [&](const SubModel& s) {
    NoGradGuard no_grad;
    return double(cross_entropy(model->forward(x, {s, space.index_of(s), nullptr}), y).item());
  };
  const double full0 = loss_of(full), small0 = loss_of(small);
  for (int step = 0; step < 15; ++step) {
    std::vector<Shape> windows;
    for (auto& [n, p] : model->named_parameters()) windows.push_back(Shape(p->tensor.dim(), 0));
    for (const SubModel& s : {full, small}) {
      cross_entropy(model->forward(x, {s, space.index_of(s), nullptr}), y).backward();
      size_t i = 0;
      for (auto& [n, p] : model->named_parameters()) {
        Shape a = p->active_shape(s);
        for (size_t d = 0; d < a.size(); ++d) windows[i][d] = std::max(windows[i][d], a[d]);
        ++i;
      }
    }
    opt.step(1e-3f, windows);
    opt.zero_grad(windows);
  }
  EXPECT_LT(loss_of(full), 0.5 * full0);
  EXPECT_LT(loss_of(small), 0.8 * small0);
}

}  // namespace
}  // namespace sn

namespace sn {
namespace {

LlamaConfig tiny_llama() {
  LlamaConfig c;
  c.vocab = 32;
  c.dim = 16;
  c.layers = 4;
  c.heads = 2;
  c.head_dim = 8;
  c.ffn = 24;
  c.context = 64;
  c.exits = {1, 2, 3, 4};
  return c;
}

Tensor tokens_of(const std::vector<int64_t>& t) { return from_vector(t, {1, int64_t(t.size())}); }

TEST(Llama, CachedDecodingEqualsTheFullForward) {
  SortedLlama m(tiny_llama(), 7);
  NoGradGuard no_grad;
  const std::vector<int64_t> seq{3, 17, 9, 9, 30, 1, 22, 5};
  const SubModel full = m.space().at(m.space().size() - 1);
  std::vector<float> ref = to_vector<float>(m.forward(tokens_of(seq), {full, 3, nullptr}));
  std::vector<KvCache> caches(4);
  // The first three tokens at once, then one at a time.
  Tensor h = m.run_blocks(m.embed(tokens_of({3, 17, 9})), 0, 4, caches);
  std::vector<float> got = to_vector<float>(m.exit_logits(h).contiguous());
  for (size_t i = 3; i < seq.size(); ++i) {
    std::vector<float> step = to_vector<float>(m.exit_logits(m.run_blocks(m.embed(tokens_of({seq[i]})), 0, 4, caches)));
    got.insert(got.end(), step.begin(), step.end());
  }
  testing::expect_close(got, ref, 1e-5f, "cached logits");
  EXPECT_EQ(caches[0].length(), int64_t(seq.size()));
}

TEST(Llama, GroupedHeadsCachedDecodingEqualsTheFullForward) {
  LlamaConfig c = tiny_llama();
  c.kv_heads = 1;  // both query heads share one key/value head
  SortedLlama m(c, 16);
  NoGradGuard no_grad;
  const std::vector<int64_t> seq{3, 17, 9, 9, 30, 1};
  const SubModel full = m.space().at(m.space().size() - 1);
  std::vector<float> ref = to_vector<float>(m.forward(tokens_of(seq), {full, 3, nullptr}));
  std::vector<KvCache> caches(4);
  Tensor h = m.run_blocks(m.embed(tokens_of({3, 17})), 0, 4, caches);
  std::vector<float> got = to_vector<float>(m.exit_logits(h).contiguous());
  for (size_t i = 2; i < seq.size(); ++i) {
    std::vector<float> step = to_vector<float>(m.exit_logits(m.run_blocks(m.embed(tokens_of({seq[i]})), 0, 4, caches)));
    got.insert(got.end(), step.begin(), step.end());
  }
  testing::expect_close(got, ref, 1e-5f, "cached logits");
  EXPECT_EQ(caches[0].heads(), 1);  // the cache holds the one shared head
}

TEST(Llama, SoftGradientIsTheMeanOfTheExitGradients) {
  SortedLlama m(tiny_llama(), 8);
  Tensor x = tokens_of({1, 5, 9, 2, 31, 7}), y = tokens_of({5, 9, 2, 31, 7, 4});
  soft_loss(m, x, y).backward();
  std::vector<std::vector<float>> soft;
  for (auto& [n, p] : m.named_parameters()) soft.push_back(to_vector<float>(p->tensor.grad()));
  m.zero_grad();
  const SubModelSpace& space = m.space();
  for (int64_t i = 0; i < space.size(); ++i)  // each exit alone, scaled by 1/4: the sum is the mean
    (cross_entropy(m.forward(x, {space.at(i), i, nullptr}).reshape({-1, 32}), y.reshape({-1})) * 0.25f).backward();
  size_t k = 0;
  for (auto& [n, p] : m.named_parameters()) testing::expect_close(p->tensor.grad(), soft[k++], 1e-5f, n.c_str());
}

TEST(Llama, SpeculativeGreedyEqualsFullGreedy) {
  SortedLlama m(tiny_llama(), 9);
  Generator gen(10);
  int64_t accepted = 0, rejected = 0;  // both paths of the verification must have run
  for (int prompt_len : {1, 3, 7}) {
    for (int trial = 0; trial < 3; ++trial) {
      std::vector<int64_t> prompt;
      for (int i = 0; i < prompt_len; ++i) prompt.push_back(int64_t(gen.below(32)));
      const std::vector<int64_t> full = greedy_decode(m, prompt, 24, 4);
      for (int64_t draft_exit : {1, 2, 3})
        for (int64_t max_draft : {1, 3, 6}) {
          DecodeStats st;
          SpeculativeOptions o;
          o.draft_exit = draft_exit;
          o.max_draft = max_draft;
          o.first_draft = std::min<int64_t>(2, max_draft);
          EXPECT_EQ(speculative_decode(m, prompt, 24, o, &st), full)
              << "prompt length " << prompt_len << ", draft exit " << draft_exit << ", max draft " << max_draft;
          EXPECT_EQ(st.new_tokens, 24);
          EXPECT_LE(st.accepted, st.drafted);
          EXPECT_GE(st.verify_steps, 1);
          accepted += st.accepted;
          rejected += st.drafted - st.accepted;
          // One token after the first: one draft, not first_draft of them.
          DecodeStats two;
          EXPECT_EQ(speculative_decode(m, prompt, 2, o, &two), std::vector<int64_t>(full.begin(), full.begin() + 2));
          EXPECT_EQ(two.drafted, 1);
        }
    }
  }
  EXPECT_GT(accepted, 0);
  EXPECT_GT(rejected, 0);
}

// What makes speculative greedy output exact at the W4 model's sizes (dim 256, head 32): under
// RowInvariantProducts, positions run through the blocks k at a time after a cached prefix get
// the logits, bit for bit, that running them one at a time gives, for k from 2 to past the
// skinny kernel's 16 rows (without it OpenBLAS takes 2–4 rows on its AVX-512 small-matrix path
// and more than 16 rows packed, each rounding its own way).
TEST(Llama, PositionsVerifiedTogetherGetTheBitsOfOneAtATime) {
  LlamaConfig c;  // W4's sizes
  c.layers = 2;
  c.exits = {1, 2};
  SortedLlama m(c, 12);
  NoGradGuard no_grad;
  const cpu::RowInvariantProducts same_bits;
  Generator gen(13);
  std::vector<int64_t> prompt, next;
  for (int i = 0; i < 5; ++i) prompt.push_back(int64_t(gen.below(256)));
  for (int i = 0; i < 17; ++i) next.push_back(int64_t(gen.below(256)));
  for (int64_t k : {2, 4, 17}) {
    std::vector<KvCache> together(2), alone(2);
    m.run_blocks(m.embed(tokens_of(prompt)), 0, 2, together);
    m.run_blocks(m.embed(tokens_of(prompt)), 0, 2, alone);
    const std::vector<int64_t> chunk(next.begin(), next.begin() + k);
    const std::vector<float> joint = to_vector<float>(m.exit_logits(m.run_blocks(m.embed(tokens_of(chunk)), 0, 2, together)).contiguous());
    std::vector<float> single;
    for (int64_t t : chunk) {
      const std::vector<float> step = to_vector<float>(m.exit_logits(m.run_blocks(m.embed(tokens_of({t})), 0, 2, alone)));
      single.insert(single.end(), step.begin(), step.end());
    }
    ASSERT_EQ(joint.size(), single.size());
    for (size_t i = 0; i < joint.size(); ++i) ASSERT_EQ(joint[i], single[i]) << k << " positions, logit " << i;
  }
}

// A context of one byte is a valid recipe: evaluation (every exit, and its decoding latency from a
// prompt of half a context, at least one byte) runs instead of failing on an empty prompt.
TEST(Llama, EvaluationWithAOneByteContext) {
  SortedLlama m(tiny_llama(), 14);
  TrainConfig c;
  c.context = 1;
  c.latency_repeats = 1;
  std::vector<uint8_t> valid;
  for (int i = 0; i < 40; ++i) valid.push_back(uint8_t(i % 32));
  const std::vector<EvalRow> rows = evaluate_language_model(m, valid, c);
  ASSERT_EQ(rows.size(), 4u);  // one per exit
  for (const EvalRow& r : rows) EXPECT_TRUE(std::isfinite(r.loss)) << r.submodel;
}

// Scales the output head so that distributions are peaked and the exits disagree more: early
// exit then stops at several depths, and a draft that is not the target is easy to tell apart.
void sharpen_head(SortedLlama& m, float factor) {
  NoGradGuard no_grad;
  for (auto& [name, p] : m.named_parameters())
    if (name == "head.weight") p->tensor.copy_(p->tensor * factor);
}

// The logits of every exit at the last position of seq, from scratch (no cache).
std::vector<std::vector<float>> last_exit_logits(SortedLlama& m, const std::vector<int64_t>& seq) {
  NoGradGuard no_grad;
  std::vector<std::vector<float>> out;
  for (const Tensor& l : m.forward_exits(tokens_of(seq)))
    out.push_back(to_vector<float>(l.select(1, int64_t(seq.size()) - 1).contiguous()));
  return out;
}

TEST(Llama, EarlyExitTokensComeFromTheFirstConfidentExitWithExactCaches) {
  SortedLlama m(tiny_llama(), 12);
  sharpen_head(m, 6.f);
  const std::vector<double> thresholds{0.6, 0.5, 0.4};
  std::vector<int64_t> stopped(4, 0);
  bool deeper_after_early = false;  // a token went deeper after earlier ones stopped: catch-up ran
  for (const std::vector<int64_t>& prompt : {std::vector<int64_t>{3}, {7, 1, 30, 2}, {12, 12, 5}}) {
    DecodeOptions o;
    o.early_exit = thresholds;
    DecodeStats st;
    const std::vector<int64_t> out = decode(m, prompt, 20, o, &st);
    ASSERT_EQ(st.exit_tokens.size(), 4u);
    std::vector<int64_t> seq = prompt;
    int64_t early_so_far = 0;
    for (int64_t token : out) {  // recompute each token's exit and choice without a cache
      const std::vector<std::vector<float>> exits = last_exit_logits(m, seq);
      size_t e = 0;
      bool ambiguous = false;
      for (; e + 1 < exits.size(); ++e) {
        const std::vector<float>& l = exits[e];
        const float top = *std::max_element(l.begin(), l.end());
        double sum = 0;
        for (float v : l) sum += std::exp(double(v - top));
        ambiguous |= std::abs(1.0 / sum - thresholds[e]) < 1e-4;
        if (1.0 / sum >= thresholds[e]) break;
      }
      if (ambiguous) break;  // rounding could decide either way: stop comparing this prompt
      const std::vector<float>& l = exits[e];
      EXPECT_EQ(token, int64_t(std::max_element(l.begin(), l.end()) - l.begin())) << "position " << seq.size();
      deeper_after_early |= early_so_far > 0 && e > 0;
      early_so_far += e + 1 < exits.size();
      ++stopped[e];
      seq.push_back(token);
    }
    int64_t total = 0;
    for (int64_t n : st.exit_tokens) total += n;
    EXPECT_EQ(total, 20);
  }
  EXPECT_TRUE(deeper_after_early);
  EXPECT_GT(stopped[0] + stopped[1] + stopped[2], 0);
  EXPECT_GT(stopped[3], 0);

  // Thresholds above 1 never stop early: full greedy; thresholds of 0 always stop at exit 1.
  const std::vector<int64_t> prompt{9, 4, 4};
  DecodeOptions never, always;
  never.early_exit = {1.5, 1.5, 1.5};
  always.early_exit = {0, 0, 0};
  EXPECT_EQ(decode(m, prompt, 16, never), greedy_decode(m, prompt, 16, 4));
  EXPECT_EQ(decode(m, prompt, 16, always), greedy_decode(m, prompt, 16, 1));
}

TEST(Llama, DecodingRefusesBadOptions) {
  SortedLlama m(tiny_llama(), 13);
  DecodeOptions o;
  o.early_exit = {0.5};
  EXPECT_THROW(decode(m, {1}, 4, o), Error);  // three thresholds needed
  o.early_exit = {0.5, 0.5, 0.5};
  o.exit = 2;
  EXPECT_THROW(decode(m, {1}, 4, o), Error);  // early exit decodes the full model
  o = DecodeOptions{};
  o.sampling.temperature = -1;
  EXPECT_THROW(decode(m, {1}, 4, o), Error);
  EXPECT_THROW(decode(m, {32}, 4, DecodeOptions{}), Error);  // outside the vocabulary
  SpeculativeOptions s;
  s.draft_exit = 4;
  EXPECT_THROW(speculative_decode(m, {1}, 4, s), Error);
}

// The exact probability of each continuation of `length` tokens (index: base-V digits, first
// token most significant) when every token is drawn from softmax(logits / T) of exit `exit`.
std::vector<double> continuation_distribution(SortedLlama& m, std::vector<int64_t> seq, int64_t length, size_t exit,
                                              double T) {
  const int64_t V = m.config().vocab;
  std::vector<double> out;
  std::function<void(double)> walk = [&](double prob) {
    const std::vector<float> l = last_exit_logits(m, seq)[exit];
    const float top = *std::max_element(l.begin(), l.end());
    std::vector<double> p(size_t(V), 0.0);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += p[size_t(v)] = std::exp((double(l[size_t(v)]) - top) / T);
    for (int64_t v = 0; v < V; ++v) {
      seq.push_back(v);
      if (--length == 0) out.push_back(prob * p[size_t(v)] / sum);
      else walk(prob * p[size_t(v)] / sum);
      ++length;
      seq.pop_back();
    }
  };
  walk(1.0);
  return out;
}

double total_variation(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d += std::abs(a[i] - b[i]);
  return d / 2;
}

// Sampled decoding, plain and speculative, against the exact distribution of the first three
// tokens (64 outcomes of a 4-token vocabulary) over many seeds.
TEST(Llama, SampledAndSpeculativeSampledDecodingFollowTheModelsDistribution) {
  LlamaConfig c = tiny_llama();
  c.vocab = 4;
  SortedLlama m(c, 14);
  sharpen_head(m, 8.f);
  const std::vector<int64_t> prompt{2, 0, 3};
  const double T = 0.8;
  const int64_t n = 3, draws = 2000;
  const std::vector<double> target = continuation_distribution(m, prompt, n, 3, T);
  const std::vector<double> draft = continuation_distribution(m, prompt, n, 0, T);
  ASSERT_EQ(target.size(), 64u);
  // The test can tell the draft's distribution from the target's.
  EXPECT_GT(total_variation(target, draft), 0.2);
  auto index = [](const std::vector<int64_t>& t) { return (t[0] * 4 + t[1]) * 4 + t[2]; };
  std::vector<double> plain(64, 0.0), speculative(64, 0.0);
  int64_t accepted = 0, rejected = 0;
  for (int64_t seed = 0; seed < draws; ++seed) {
    DecodeOptions o;
    o.sampling = {T, uint64_t(seed)};
    plain[size_t(index(decode(m, prompt, n, o)))] += 1.0 / draws;
    SpeculativeOptions s;
    s.draft_exit = 1;
    s.first_draft = 2;
    s.max_draft = 3;
    s.sampling = {T, uint64_t(seed)};
    DecodeStats st;
    speculative[size_t(index(speculative_decode(m, prompt, n, s, &st)))] += 1.0 / draws;
    accepted += st.accepted;
    rejected += st.drafted - st.accepted;
  }
  // With 2000 draws over 64 outcomes the sampling error alone is about 0.03.
  EXPECT_LT(total_variation(plain, target), 0.07);
  EXPECT_LT(total_variation(speculative, target), 0.07);
  EXPECT_GT(accepted, 0);
  EXPECT_GT(rejected, 0);
  // A seed gives the same tokens every time.
  DecodeOptions o;
  o.sampling = {T, 5};
  EXPECT_EQ(decode(m, prompt, 12, o), decode(m, prompt, 12, o));
}

TEST(Llama, ChosenDraftExitReportsMeasuredAcceptanceAndCost) {
  SortedLlama m(tiny_llama(), 15);
  const std::vector<int64_t> prompt{5, 9, 13, 2, 2, 7, 30, 1};
  SpeculativeOptions s;
  s.draft_exit = 0;
  DecodeStats st;
  EXPECT_EQ(speculative_decode(m, prompt, 16, s, &st), greedy_decode(m, prompt, 16, 4));
  ASSERT_EQ(st.exit_agreement.size(), 4u);
  ASSERT_EQ(st.exit_cost.size(), 4u);
  EXPECT_DOUBLE_EQ(st.exit_agreement[3], 1.0);
  EXPECT_GE(st.draft_exit, 1);
  EXPECT_LT(st.draft_exit, 4);
  for (size_t e = 0; e < 4; ++e) {
    EXPECT_GE(st.exit_agreement[e], 0.0);
    EXPECT_LE(st.exit_agreement[e], 1.0);
    EXPECT_GT(st.exit_cost[e], 0.0);
  }
}

TEST(Llama, TheFullExitOfGreedyDecodingIsTheFullModel) {
  SortedLlama m(tiny_llama(), 11);
  const std::vector<int64_t> prompt{4, 8, 15};
  std::vector<int64_t> seq = prompt;
  const std::vector<int64_t> decoded = greedy_decode(m, prompt, 5, 4);
  NoGradGuard no_grad;
  const SubModel full = m.space().at(m.space().size() - 1);
  for (int64_t expected : decoded) {  // recompute each token from scratch, without a cache
    std::vector<float> l = to_vector<float>(m.forward(tokens_of(seq), {full, 3, nullptr}).select(1, int64_t(seq.size()) - 1));
    const int64_t best = int64_t(std::max_element(l.begin(), l.end()) - l.begin());
    EXPECT_EQ(best, expected);
    seq.push_back(best);
  }
}

}  // namespace
}  // namespace sn

namespace sn {
namespace {

TEST(TextCorpus, ReadsAFolderInNameOrderSkipsIndexesAndHoldsOutTheTail) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("sn_text_" + std::to_string(::getpid()));
  fs::create_directories(dir / "sub");
  std::ofstream(dir / "b.txt") << std::string(300, 'b');
  std::ofstream(dir / "a.txt") << std::string(300, 'a');
  std::ofstream(dir / "sub" / "c") << std::string(400, 'c');
  std::ofstream(dir / "a.dat") << "binary index";  // fortune's index files are skipped
  fs::create_symlink(dir / "a.txt", dir / "a.u8");  // and symbolic links
  const TextCorpus c = load_text(dir.string(), 0.1, 16);
  EXPECT_EQ(c.files, 3);
  const size_t total = 300 + 300 + 400 + 2;  // two newlines between files
  EXPECT_EQ(c.train.size() + c.valid.size(), total);
  EXPECT_EQ(c.train.front(), 'a');  // a.txt, b.txt, sub/c
  EXPECT_EQ(c.valid.back(), 'c');
  EXPECT_EQ(c.valid.size(), total - size_t(double(total) * 0.9));
  Generator gen(1);
  auto [x, y] = text_batch(c.train, 4, 16, gen);
  EXPECT_EQ(x.sizes(), Shape({4, 16}));
  std::vector<int64_t> xs = to_vector<int64_t>(x), ys = to_vector<int64_t>(y);
  for (size_t i = 0; i + 1 < 16; ++i) EXPECT_EQ(ys[i], xs[i + 1]);  // targets are the next bytes
  try {
    load_text((dir / "missing").string(), 0.05, 16);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no such file or folder"), std::string::npos) << e.what();
  }
  try {
    load_text((dir / "a.txt").string(), 0.05, 16);  // 300 bytes: 15 held out, too few for a window
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("too little"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sn
