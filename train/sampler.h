// train/sampler.h — which sub-models each optimizer step trains (the sorted update rule).
//   uniform        g sub-models drawn uniformly (with replacement)
//   weighted       drawn with probability ∝ (flops / max flops)^power (power < 0 favours small)
//   sandwich       the largest, the smallest, and g-2 uniform draws
//   enumerate_all  every sub-model in index order, g per step, cycling
#pragma once

#include <string>
#include <vector>

#include "core/rng.h"
#include "nn/submodel.h"

namespace sn {

enum class SamplerKind { uniform, weighted, sandwich, enumerate_all };
SamplerKind parse_sampler(const std::string& text);
const char* sampler_name(SamplerKind kind);

struct SamplerState {
  GeneratorState rng;
  int64_t cursor = 0;  // enumerate_all: the next index
};

class Sampler {
 public:
  // flops[i]: the cost of sub-model i (used by `weighted`).
  Sampler(const SubModelSpace& space, SamplerKind kind, int64_t per_step, uint64_t seed,
          std::vector<int64_t> flops = {}, double power = -1.0);
  // The indices of the sub-models for the next optimizer step.
  std::vector<int64_t> next();
  SamplerState state() const { return {gen_.state(), cursor_}; }
  void set_state(const SamplerState& s);
  int64_t per_step() const { return per_step_; }

 private:
  int64_t draw_weighted();
  int64_t size_;
  SamplerKind kind_;
  int64_t per_step_;
  Generator gen_;
  std::vector<double> cumulative_;  // weighted: cumulative probabilities
  int64_t cursor_ = 0;
};

}  // namespace sn
