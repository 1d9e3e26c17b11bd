// train/sampler.cpp — sub-model sampling.
#include "train/sampler.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace sn {

SamplerKind parse_sampler(const std::string& text) {
  if (text == "uniform") return SamplerKind::uniform;
  if (text == "weighted") return SamplerKind::weighted;
  if (text == "sandwich") return SamplerKind::sandwich;
  if (text == "enumerate_all") return SamplerKind::enumerate_all;
  fail("sampler", "unknown sampler '" + text + "' (uniform, weighted, sandwich or enumerate_all)");
}

const char* sampler_name(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::uniform: return "uniform";
    case SamplerKind::weighted: return "weighted";
    case SamplerKind::sandwich: return "sandwich";
    case SamplerKind::enumerate_all: return "enumerate_all";
  }
  return "?";
}

Sampler::Sampler(const SubModelSpace& space, SamplerKind kind, int64_t per_step, uint64_t seed,
                 std::vector<int64_t> flops, double power)
    : size_(space.size()), kind_(kind), per_step_(per_step), gen_(seed, /*stream=*/0x5a3f1e) {
  SN_CHECK(per_step >= 1, "sampler", "sub-models per step must be at least 1, got ", per_step);
  SN_CHECK(kind != SamplerKind::sandwich || per_step >= 2, "sampler",
           "sandwich needs at least 2 sub-models per step (largest and smallest), got ", per_step);
  if (kind == SamplerKind::weighted) {
    SN_CHECK(int64_t(flops.size()) == size_, "sampler", "weighted sampling needs the cost of all ",
             size_, " sub-models");
    double max_flops = double(*std::max_element(flops.begin(), flops.end()));
    double acc = 0.0;
    for (int64_t f : flops) {
      acc += std::pow(double(f) / max_flops, power);
      cumulative_.push_back(acc);
    }
    for (double& c : cumulative_) c /= acc;
  }
}

int64_t Sampler::draw_weighted() {
  double u = double(gen_.next_u64() >> 11) * (1.0 / 9007199254740992.0);
  auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), u);
  return std::min<int64_t>(int64_t(it - cumulative_.begin()), size_ - 1);
}

std::vector<int64_t> Sampler::next() {
  std::vector<int64_t> out;
  switch (kind_) {
    case SamplerKind::uniform:
      for (int64_t i = 0; i < per_step_; ++i) out.push_back(int64_t(gen_.below(uint64_t(size_))));
      break;
    case SamplerKind::weighted:
      for (int64_t i = 0; i < per_step_; ++i) out.push_back(draw_weighted());
      break;
    case SamplerKind::sandwich:
      out.push_back(size_ - 1);
      out.push_back(0);
      for (int64_t i = 2; i < per_step_; ++i) out.push_back(int64_t(gen_.below(uint64_t(size_))));
      break;
    case SamplerKind::enumerate_all:
      for (int64_t i = 0; i < per_step_; ++i) {
        out.push_back(cursor_);
        cursor_ = (cursor_ + 1) % size_;
      }
      break;
  }
  return out;
}

void Sampler::set_state(const SamplerState& s) {
  SN_CHECK(s.cursor >= 0 && s.cursor < size_, "sampler", "state's cursor ", s.cursor, " is outside the ", size_,
           " sub-models");
  gen_.set_state(s.rng);
  cursor_ = s.cursor;
}

}  // namespace sn
