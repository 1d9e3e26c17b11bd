// models/decoding.h — decoding a SortedLlama with key/value caches: greedy decoding at any exit,
// and self-speculative greedy decoding, where a shallow exit drafts tokens and the full model
// verifies them in one pass. The draft shares the full model's first blocks and therefore their
// caches: verifying runs only the blocks past the draft exit, from the hidden states the draft
// already computed. Greedy output is the full model's greedy output, token for token.
#pragma once

#include <cstdint>
#include <vector>

#include "models/llama.h"

namespace sn {

struct DecodeStats {
  int64_t new_tokens = 0;
  int64_t drafted = 0, accepted = 0, verify_steps = 0;  // speculative decoding
  double seconds = 0;
  double acceptance() const { return drafted ? double(accepted) / double(drafted) : 0.0; }
  double tokens_per_verify() const { return verify_steps ? double(new_tokens) / double(verify_steps) : 0.0; }
};

// Greedy decoding of max_new tokens after the prompt, at exit `exit` (the depth, e.g. 8 = full).
std::vector<int64_t> greedy_decode(SortedLlama& model, const std::vector<int64_t>& prompt, int64_t max_new,
                                   int64_t exit, DecodeStats* stats = nullptr);

struct SpeculativeOptions {
  int64_t draft_exit = 2;
  int64_t max_draft = 8;      // the draft length adapts in [1, max_draft]
  int64_t first_draft = 4;
};

// Self-speculative greedy decoding: the same tokens as greedy_decode(model, prompt, max_new, full).
std::vector<int64_t> speculative_decode(SortedLlama& model, const std::vector<int64_t>& prompt, int64_t max_new,
                                        const SpeculativeOptions& options, DecodeStats* stats = nullptr);

}  // namespace sn
