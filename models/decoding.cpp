// models/decoding.cpp — greedy and self-speculative decoding (see decoding.h).
#include "models/decoding.h"

#include <algorithm>
#include <chrono>

#include "autograd/ops.h"
#include "core/grad_mode.h"

namespace sn {
namespace {

Tensor token_tensor(const std::vector<int64_t>& tokens, Device device) {
  return from_vector(tokens, {1, int64_t(tokens.size())}).to(device);
}

// The arg-max of each row of logits [1, T, V] (first index on ties, as std::max_element).
std::vector<int64_t> argmax_rows(const Tensor& logits) {
  const int64_t T = logits.size(1), V = logits.size(2);
  std::vector<float> l = to_vector<float>(logits.contiguous());
  std::vector<int64_t> out(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    const float* row = l.data() + t * V;
    out[size_t(t)] = int64_t(std::max_element(row, row + V) - row);
  }
  return out;
}

void check_prompt(const SortedLlama& m, const std::vector<int64_t>& prompt) {
  SN_CHECK(!prompt.empty(), "decode", "the prompt is empty");
  for (int64_t t : prompt)
    SN_CHECK(t >= 0 && t < m.config().vocab, "decode", "token ", t, " outside the vocabulary of ", m.config().vocab);
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::vector<int64_t> greedy_decode(SortedLlama& model, const std::vector<int64_t>& prompt, int64_t max_new,
                                   int64_t exit, DecodeStats* stats) {
  check_prompt(model, prompt);
  SN_CHECK(exit >= 1 && exit <= model.config().layers, "decode", "exit ", exit, " outside [1, ",
           model.config().layers, "]");
  NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  const Device device = model.device();
  std::vector<KvCache> caches(static_cast<size_t>(model.config().layers));
  std::vector<int64_t> out;
  Tensor h = model.run_blocks(model.embed(token_tensor(prompt, device)), 0, exit, caches);
  int64_t next = argmax_rows(model.exit_logits(h.narrow(1, h.size(1) - 1, 1)))[0];
  while (int64_t(out.size()) < max_new) {
    out.push_back(next);
    if (int64_t(out.size()) == max_new) break;
    h = model.run_blocks(model.embed(token_tensor({next}, device)), 0, exit, caches);
    next = argmax_rows(model.exit_logits(h))[0];
  }
  if (stats) {
    stats->new_tokens = int64_t(out.size());
    stats->seconds = since(t0);
  }
  return out;
}

std::vector<int64_t> speculative_decode(SortedLlama& model, const std::vector<int64_t>& prompt, int64_t max_new,
                                        const SpeculativeOptions& o, DecodeStats* stats) {
  check_prompt(model, prompt);
  const int64_t L = model.config().layers, e = o.draft_exit;
  SN_CHECK(e >= 1 && e < L, "decode", "the draft exit ", e, " must lie in [1, ", L, ")");
  SN_CHECK(o.max_draft >= 1 && o.first_draft >= 1, "decode", "draft lengths must be positive");
  NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  const Device device = model.device();
  DecodeStats st;
  std::vector<KvCache> caches(static_cast<size_t>(L));
  // The prompt through the full model; its last logits give the first new token.
  Tensor h = model.run_blocks(model.embed(token_tensor(prompt, device)), 0, L, caches);
  int64_t pending = argmax_rows(model.exit_logits(h.narrow(1, h.size(1) - 1, 1)))[0];
  std::vector<int64_t> out{pending};
  int64_t k = std::min(o.first_draft, o.max_draft);
  while (int64_t(out.size()) < max_new) {
    // Draft: the inputs are `pending` then each drafted token; blocks [0, e) append their keys
    // and values to the shared caches, and the hidden states at the draft exit are kept.
    const int64_t past = caches[0].length();
    std::vector<int64_t> drafted;
    std::vector<Tensor> hidden;
    int64_t input = pending;
    for (int64_t i = 0; i < k; ++i) {
      Tensor he = model.run_blocks(model.embed(token_tensor({input}, device)), 0, e, caches);
      hidden.push_back(he);
      input = argmax_rows(model.exit_logits(he))[0];
      drafted.push_back(input);
    }
    // Verify: blocks [e, L) over the k draft inputs at once; f[j] is the full model's token
    // after input j, to compare with drafted[j].
    Tensor full = model.run_blocks(cat(hidden, 1), e, L, caches);
    std::vector<int64_t> f = argmax_rows(model.exit_logits(full));
    int64_t a = 0;
    while (a < k && drafted[size_t(a)] == f[size_t(a)]) ++a;
    st.drafted += k;
    st.accepted += a;
    ++st.verify_steps;
    for (int64_t j = 0; j < a; ++j) out.push_back(drafted[size_t(j)]);
    if (a < k) {
      // The full model's token replaces the first rejected one; positions after its input go.
      out.push_back(f[size_t(a)]);
      for (KvCache& c : caches) c.truncate(past + a + 1);
      pending = f[size_t(a)];
    } else {
      pending = drafted.back();  // every input was the full model's choice: all caches stand
    }
    k = a == k ? std::min(k + 1, o.max_draft) : std::max<int64_t>(1, a);  // follow the acceptance
  }
  out.resize(size_t(max_new));
  st.new_tokens = max_new;
  st.seconds = since(t0);
  if (stats) *stats = st;
  return out;
}

}  // namespace sn
