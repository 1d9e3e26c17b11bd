// models/decoding.h — decoding a SortedLlama with key/value caches:
// - plain decoding at any exit, greedy or sampled;
// - confidence-based early exit: each token stops at the first exit sure enough of it; the
//   blocks it skipped compute its keys and values later, together with the next token that goes
//   deeper, so every cache entry is the one the full model would hold (no state copying);
// - self-speculative decoding: a shallow exit drafts tokens and the full model verifies them in
//   one pass. The draft shares the full model's first blocks and therefore their caches:
//   verifying runs only the blocks past the draft exit, from the hidden states the draft already
//   computed. Greedy output is the full model's greedy output, token for token, on the CPU,
//   where both compute with row-invariant products (a position's bits do not depend on the
//   positions run with it, kernels/cpu/gemm_invariant.h); on a GPU, cuBLAS chooses kernels by
//   shape, so a near-tie of the top two logits can still go either way. Sampled output
//   follows the full model's distribution (speculative sampling: accept a drafted x with
//   probability min(1, p(x)/q(x)), otherwise draw from the normalised max(0, p − q)).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/llama.h"

namespace sn {

// How a token is chosen from logits: temperature 0 takes the arg-max (the first on ties),
// temperature T > 0 draws from softmax(logits / T) with a generator seeded by `seed`.
struct Sampling {
  double temperature = 0;
  uint64_t seed = 0;
  bool greedy() const { return temperature <= 0; }
};

struct DecodeOptions {
  int64_t exit = 0;  // the depth to decode at; 0: the full model
  Sampling sampling;
  // Early exit: one threshold per exit of the model but the last (config().exits). A token
  // stops at the first exit whose largest probability (softmax of the logits) reaches its
  // threshold; the last exit always answers. Empty: off.
  std::vector<double> early_exit;
  // Called with each new token as soon as it is chosen (e.g. to print it); may be empty.
  std::function<void(int64_t)> on_token;
};

struct DecodeStats {
  int64_t new_tokens = 0;
  double seconds = 0;
  std::vector<int64_t> exit_tokens;  // early exit: how many tokens stopped at each exit
  // Speculative decoding.
  int64_t drafted = 0, accepted = 0, verify_steps = 0;
  double draft_seconds = 0;              // time spent drafting (draft_passes single-token passes)
  int64_t draft_passes = 0;
  int64_t draft_exit = 0;                // the exit that drafted (chosen, when asked to)
  std::vector<double> exit_agreement;    // draft-exit choice: per exit, measured acceptance
  std::vector<double> exit_cost;         // ... and cost of one token relative to the full model
  double acceptance() const { return drafted ? double(accepted) / double(drafted) : 0.0; }
  double tokens_per_verify() const { return verify_steps ? double(new_tokens) / double(verify_steps) : 0.0; }
  double seconds_per_draft() const { return draft_passes ? draft_seconds / double(draft_passes) : 0.0; }
};

std::vector<int64_t> decode(SortedLlama& model, const std::vector<int64_t>& prompt, int64_t max_new,
                            const DecodeOptions& options, DecodeStats* stats = nullptr);

// Greedy decoding of max_new tokens after the prompt, at exit `exit` (the depth, e.g. 8 = full).
std::vector<int64_t> greedy_decode(SortedLlama& model, const std::vector<int64_t>& prompt, int64_t max_new,
                                   int64_t exit, DecodeStats* stats = nullptr);

struct SpeculativeOptions {
  // The drafting exit; 0: chosen before decoding from the acceptance measured on the prompt
  // (each exit's agreement with the full model there) and the measured cost of one token at
  // each exit, maximising the expected tokens per unit of time. The costs are wall-clock
  // timings, so the choice (and with sampling, the tokens drawn) can differ from run to run;
  // greedy output on the CPU cannot. Name an exit for runs that must repeat exactly.
  int64_t draft_exit = 2;
  int64_t max_draft = 8;  // the draft length adapts in [1, max_draft] to the acceptance
  int64_t first_draft = 4;
  Sampling sampling;
};

// Self-speculative decoding of the full model: the same tokens as decode() of the full model
// when greedy; when sampling, tokens distributed as the full model's (not the same draws).
std::vector<int64_t> speculative_decode(SortedLlama& model, const std::vector<int64_t>& prompt, int64_t max_new,
                                        const SpeculativeOptions& options, DecodeStats* stats = nullptr);

// The largest probability of each row of logits [..., V] (softmax at temperature 1): the
// confidence early exit compares with its thresholds.
std::vector<float> top_probabilities(const Tensor& logits);

// "0.9,0.8,0.7" -> {0.9, 0.8, 0.7}: early-exit thresholds, each a number >= 0 (above 1: never
// stop there); a clear error otherwise.
std::vector<double> parse_thresholds(const std::string& text);

}  // namespace sn
