// models/decoding.cpp — plain, early-exit and self-speculative decoding (see decoding.h).
#include "models/decoding.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

#include "autograd/ops.h"
#include "core/grad_mode.h"
#include "core/rng.h"
#include "kernels/cpu/gemm_invariant.h"

namespace sn {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

Tensor token_tensor(const std::vector<int64_t>& tokens, Device device) {
  return from_vector(tokens, {1, int64_t(tokens.size())}).to(device);
}

std::vector<float> host_rows(const Tensor& logits) { return to_vector<float>(logits.contiguous()); }

int64_t argmax(const float* row, int64_t V) { return int64_t(std::max_element(row, row + V) - row); }

void check_prompt(const SortedLlama& m, const std::vector<int64_t>& prompt) {
  SN_CHECK(!prompt.empty(), "decode", "the prompt is empty");
  for (int64_t t : prompt)
    SN_CHECK(t >= 0 && t < m.config().vocab, "decode", "token ", t, " outside the vocabulary of ", m.config().vocab);
}

// Picks tokens from rows of logits: the arg-max, or draws from softmax(row / temperature).
class TokenChooser {
 public:
  explicit TokenChooser(const Sampling& s) : sampling_(s), gen_(s.seed) {
    SN_CHECK(std::isfinite(s.temperature) && s.temperature >= 0, "decode", "the temperature must be finite and >= 0, got ",
             s.temperature);
  }
  bool greedy() const { return sampling_.greedy(); }

  std::vector<double> distribution(const float* row, int64_t V) const {
    const double inv_t = 1.0 / sampling_.temperature;
    const double top = double(*std::max_element(row, row + V));
    std::vector<double> p(static_cast<size_t>(V));
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += p[size_t(v)] = std::exp((double(row[v]) - top) * inv_t);
    for (double& x : p) x /= sum;
    return p;
  }
  int64_t pick(const float* row, int64_t V) { return greedy() ? argmax(row, V) : draw(distribution(row, V)); }

  // A draw from weights w (not necessarily normalised, not all zero) by the inverse CDF.
  int64_t draw(const std::vector<double>& w) {
    double total = 0;
    for (double x : w) total += x;
    const double u = uniform() * total;
    double acc = 0;
    int64_t last = 0;
    for (size_t v = 0; v < w.size(); ++v) {
      if (w[v] <= 0) continue;
      acc += w[v];
      last = int64_t(v);
      if (u < acc) return last;
    }
    return last;  // u within rounding of the total
  }
  double uniform() { return double(gen_.next_u64() >> 11) * 0x1.0p-53; }  // [0, 1), 53 bits

 private:
  Sampling sampling_;
  Generator gen_;
};

// The boundaries of the decoding segments: 0, then every depth a token may stop at.
std::vector<int64_t> segment_bounds(const SortedLlama& model, const DecodeOptions& o) {
  const LlamaConfig& c = model.config();
  const int64_t depth = o.exit > 0 ? o.exit : c.layers;
  SN_CHECK(depth >= 1 && depth <= c.layers, "decode", "exit ", depth, " outside [1, ", c.layers, "]");
  if (o.early_exit.empty()) return {0, depth};
  SN_CHECK(depth == c.layers, "decode", "early exit decodes the full model (leave out the exit)");
  SN_CHECK(o.early_exit.size() + 1 == c.exits.size(), "decode", "early exit needs ", c.exits.size() - 1,
           " thresholds (one per exit before the last), got ", o.early_exit.size());
  std::vector<int64_t> bounds{0};
  bounds.insert(bounds.end(), c.exits.begin(), c.exits.end());
  return bounds;
}

}  // namespace

std::vector<float> top_probabilities(const Tensor& logits) {
  const int64_t V = logits.size(-1);
  std::vector<float> l = host_rows(logits);
  std::vector<float> out(l.size() / size_t(V));
  for (size_t r = 0; r < out.size(); ++r) {
    const float* row = l.data() + r * size_t(V);
    const float top = *std::max_element(row, row + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v] - top));
    out[r] = float(1.0 / sum);
  }
  return out;
}

std::vector<double> parse_thresholds(const std::string& text) {
  std::vector<double> out;
  size_t at = 0;
  while (true) {
    const size_t end = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, end - at);
    char* stop = nullptr;
    const double t = std::strtod(item.c_str(), &stop);
    SN_CHECK(!item.empty() && stop == item.c_str() + item.size() && std::isfinite(t) && t >= 0, "decode",
             "early-exit thresholds are numbers >= 0 separated by commas, got '", text, "'");
    out.push_back(t);
    if (end == text.size()) return out;
    at = end + 1;
  }
}

std::vector<int64_t> decode(SortedLlama& model, const std::vector<int64_t>& prompt, int64_t max_new,
                            const DecodeOptions& o, DecodeStats* stats) {
  check_prompt(model, prompt);
  const std::vector<int64_t> bounds = segment_bounds(model, o);
  const size_t segments = bounds.size() - 1;
  NoGradGuard no_grad;
  const cpu::RowInvariantProducts same_bits;  // a position's logits do not depend on the positions run with it
  const auto t0 = Clock::now();
  const Device device = model.device();
  const int64_t V = model.config().vocab;
  TokenChooser chooser(o.sampling);
  std::vector<KvCache> caches(static_cast<size_t>(model.config().layers));
  // waiting[i]: hidden states at depth bounds[i] of the positions that stopped there, which the
  // blocks from bounds[i] on have not seen yet (early exit only).
  std::vector<Tensor> waiting(segments);
  std::vector<int64_t> exit_tokens(segments, 0), out, input = prompt;
  while (int64_t(out.size()) < max_new) {
    Tensor x = model.embed(token_tensor(input, device));
    for (size_t i = 0; i < segments; ++i) {
      if (waiting[i].defined()) x = cat({std::exchange(waiting[i], Tensor()), x}, 1);
      x = model.run_blocks(x, bounds[i], bounds[i + 1], caches);
      Tensor logits = model.exit_logits(x.narrow(1, x.size(1) - 1, 1));
      const bool last = i + 1 == segments;
      if (!last && double(top_probabilities(logits)[0]) < o.early_exit[i]) continue;  // not sure: go deeper
      if (!last) waiting[i + 1] = waiting[i + 1].defined() ? cat({waiting[i + 1], x}, 1) : x;
      ++exit_tokens[i];
      const std::vector<float> row = host_rows(logits);
      out.push_back(chooser.pick(row.data(), V));
      if (o.on_token) o.on_token(out.back());
      input = {out.back()};
      break;
    }
  }
  if (stats) {
    *stats = DecodeStats{};
    stats->new_tokens = int64_t(out.size());
    stats->seconds = since(t0);
    stats->exit_tokens = exit_tokens;
  }
  return out;
}

std::vector<int64_t> greedy_decode(SortedLlama& model, const std::vector<int64_t>& prompt, int64_t max_new,
                                   int64_t exit, DecodeStats* stats) {
  DecodeOptions o;
  o.exit = exit;
  SN_CHECK(exit >= 1, "decode", "exit ", exit, " outside [1, ", model.config().layers, "]");
  return decode(model, prompt, max_new, o, stats);
}

namespace {

// Seconds for one token through blocks [0, depth) and the head, with caches of their own
// (the best of a few tries).
double token_seconds(SortedLlama& model, int64_t depth) {
  const Tensor token = token_tensor({0}, model.device());
  double best = std::numeric_limits<double>::infinity();
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<KvCache> scratch(static_cast<size_t>(model.config().layers));
    const auto t0 = Clock::now();
    host_rows(model.exit_logits(model.run_blocks(model.embed(token), 0, depth, scratch)));
    best = std::min(best, since(t0));
  }
  return best;
}

// Expected tokens per unit of time (a full-model token = 1) with acceptance alpha, draft cost c
// and k drafted tokens per verification: accepted prefixes give (1 − α^k)/(1 − α) tokens per
// step, which costs k draft tokens plus one pass of the deeper blocks over the k positions.
double expected_rate(double alpha, double c, int64_t k) {
  const double tokens = alpha >= 1 ? double(k) : (1 - std::pow(alpha, double(k))) / (1 - alpha);
  return tokens / (double(k) * c + (1 - c));
}

// Runs the prompt through the full model exit by exit and fills stats.exit_agreement (how
// often each exit's choice matches the full model's on the prompt: for sampling, the expected
// acceptance Σ min(p, q)) and stats.exit_cost; returns the hidden states of the full model.
Tensor prefill_measuring(SortedLlama& model, const Tensor& x, std::vector<KvCache>& caches, const TokenChooser& chooser,
                         DecodeStats& st) {
  const LlamaConfig& c = model.config();
  const int64_t V = c.vocab;
  std::vector<std::vector<float>> rows;
  Tensor h = x;
  int64_t from = 0;
  for (int64_t exit : c.exits) {
    h = model.run_blocks(h, from, exit, caches);
    rows.push_back(host_rows(model.exit_logits(h)));
    from = exit;
  }
  const std::vector<float>& full = rows.back();
  const int64_t T = x.size(1);
  const double t_full = token_seconds(model, c.layers);
  for (size_t e = 0; e < rows.size(); ++e) {
    double agree = 0;
    for (int64_t t = 0; t < T; ++t) {
      const float* q = rows[e].data() + t * V;
      const float* p = full.data() + t * V;
      if (chooser.greedy()) {
        agree += argmax(q, V) == argmax(p, V);
      } else {
        const std::vector<double> pq = chooser.distribution(q, V), pp = chooser.distribution(p, V);
        for (int64_t v = 0; v < V; ++v) agree += std::min(pq[size_t(v)], pp[size_t(v)]);
      }
    }
    st.exit_agreement.push_back(agree / double(T));
    st.exit_cost.push_back(e + 1 == rows.size() ? 1.0 : token_seconds(model, c.exits[e]) / t_full);
  }
  return h;
}

}  // namespace

std::vector<int64_t> speculative_decode(SortedLlama& model, const std::vector<int64_t>& prompt, int64_t max_new,
                                        const SpeculativeOptions& o, DecodeStats* stats) {
  check_prompt(model, prompt);
  const LlamaConfig& c = model.config();
  const int64_t L = c.layers, V = c.vocab;
  SN_CHECK(o.draft_exit == 0 || (o.draft_exit >= 1 && o.draft_exit < L), "decode", "the draft exit ", o.draft_exit,
           " must lie in [1, ", L, ") (0: choose)");
  SN_CHECK(o.max_draft >= 1 && o.first_draft >= 1, "decode", "draft lengths must be positive");
  SN_CHECK(o.draft_exit > 0 || c.exits.size() >= 2, "decode", "the model has no exit before the last to draft with");
  NoGradGuard no_grad;
  // Verifying k positions at once gives each the bits that decoding it alone gives, so that greedy
  // output is decode()'s token for token (kernels/cpu/gemm_invariant.h).
  const cpu::RowInvariantProducts same_bits;
  const auto t0 = Clock::now();
  const Device device = model.device();
  TokenChooser chooser(o.sampling);
  DecodeStats st;
  std::vector<KvCache> caches(static_cast<size_t>(L));
  // The prompt through the full model; its last logits give the first new token.
  const Tensor x = model.embed(token_tensor(prompt, device));
  int64_t e = o.draft_exit, k = std::min(o.first_draft, o.max_draft);
  Tensor h;
  if (e > 0) {
    h = model.run_blocks(x, 0, L, caches);
  } else {
    h = prefill_measuring(model, x, caches, chooser, st);
    double best = -1;
    for (size_t i = 0; i + 1 < c.exits.size(); ++i)
      for (int64_t kk = 1; kk <= o.max_draft; ++kk) {
        const double rate = expected_rate(st.exit_agreement[i], st.exit_cost[i], kk);
        if (rate > best) best = rate, e = c.exits[i], k = kk;
      }
  }
  st.draft_exit = e;
  std::vector<float> last = host_rows(model.exit_logits(h.narrow(1, h.size(1) - 1, 1)));
  int64_t pending = chooser.pick(last.data(), V);
  std::vector<int64_t> out{pending};
  while (int64_t(out.size()) < max_new) {
    // Draft: the inputs are `pending` then each drafted token; blocks [0, e) append their keys
    // and values to the shared caches, and the hidden states at the draft exit are kept.
    const auto t_draft = Clock::now();
    const int64_t kn = std::min(k, max_new - int64_t(out.size()));  // no drafts past the last token wanted
    const int64_t past = caches[0].length();
    std::vector<int64_t> drafted;
    std::vector<Tensor> hidden;
    std::vector<std::vector<double>> q;  // the draft's distributions (sampling)
    int64_t input = pending;
    for (int64_t i = 0; i < kn; ++i) {
      Tensor he = model.run_blocks(model.embed(token_tensor({input}, device)), 0, e, caches);
      hidden.push_back(he);
      const std::vector<float> row = host_rows(model.exit_logits(he));
      if (chooser.greedy()) {
        input = argmax(row.data(), V);
      } else {
        q.push_back(chooser.distribution(row.data(), V));
        input = chooser.draw(q.back());
      }
      drafted.push_back(input);
    }
    st.draft_seconds += since(t_draft);
    st.draft_passes += kn;
    // Verify: blocks [e, L) over the kn draft inputs at once; row j is the full model's
    // distribution after input j, which judges drafted[j].
    const std::vector<float> f = host_rows(model.exit_logits(model.run_blocks(cat(hidden, 1), e, L, caches)));
    int64_t a = 0, replacement = -1;
    for (; a < kn; ++a) {
      const float* row = f.data() + a * V;
      const int64_t d = drafted[size_t(a)];
      if (chooser.greedy()) {
        const int64_t best = argmax(row, V);
        if (best == d) continue;
        replacement = best;
        break;
      }
      std::vector<double> p = chooser.distribution(row, V);
      const std::vector<double>& qa = q[size_t(a)];
      if (chooser.uniform() * qa[size_t(d)] < p[size_t(d)]) continue;  // accept with min(1, p/q)
      double left = 0;
      for (int64_t v = 0; v < V; ++v) left += p[size_t(v)] = std::max(0.0, p[size_t(v)] - qa[size_t(v)]);
      replacement = left > 0 ? chooser.draw(p) : chooser.draw(chooser.distribution(row, V));
      break;
    }
    st.drafted += kn;
    st.accepted += a;
    ++st.verify_steps;
    for (int64_t j = 0; j < a; ++j) out.push_back(drafted[size_t(j)]);
    if (a < kn) {
      // The full model's token replaces the first rejected one; positions after its input go.
      out.push_back(replacement);
      for (KvCache& cache : caches) cache.truncate(past + a + 1);
      pending = replacement;
    } else {
      pending = drafted.back();  // every input was accepted: all caches stand
    }
    k = a == kn ? std::min(kn + 1, o.max_draft) : std::max<int64_t>(1, a);  // follow the acceptance
  }
  out.resize(size_t(std::max<int64_t>(max_new, 0)));
  st.new_tokens = int64_t(out.size());
  st.seconds = since(t0);
  if (stats) *stats = st;
  return out;
}

}  // namespace sn
