// train/optimizer.h — SGD (momentum, Nesterov, weight decay) and AdamW over nested parameters,
// with the two semantics of DESIGN.md §3.4:
//   dense  — every element steps each time (as PyTorch with gradients zeroed, not set to None):
//            untouched elements still decay and follow their momentum;
//   nested — only the window the sampled sub-models touched steps (the union of their nested
//            windows), its optimizer state too; everything outside is left exactly as it was.
//            AdamW's bias correction uses the optimizer's step count, not an element's: an
//            element first reached at step t gets the corrected update of step t (as lazy Adam
//            does). With the sandwich sampler every window is the whole parameter anyway.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "nn/module.h"

namespace sn {

enum class UpdateSemantics { dense, nested };
UpdateSemantics parse_update_semantics(const std::string& text);

struct OptimizerConfig {
  std::string name = "sgd";  // sgd | adamw
  float momentum = 0.9f;
  bool nesterov = true;
  float weight_decay = 0.f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  UpdateSemantics semantics = UpdateSemantics::dense;
};

class Optimizer {
 public:
  Optimizer(Module& model, OptimizerConfig config);

  // One update with learning rate lr. `windows[i]` is the prefix of parameter i touched since the
  // last step (used by nested semantics; dense ignores it).
  void step(float lr, const std::vector<Shape>& windows);
  // Zeroes the gradients inside the windows (nothing outside them was written).
  void zero_grad(const std::vector<Shape>& windows);
  // Scales the gradients so that their global L2 norm is at most max_norm; returns the norm
  // before clipping.
  double clip_grad_norm(float max_norm, const std::vector<Shape>& windows);

  int64_t steps() const { return steps_; }
  // Optimizer state by name ("<param>.m", "<param>.v", "step") for checkpoints.
  std::map<std::string, Tensor> state() const;
  void load_state(const std::map<std::string, Tensor>& state);
  const std::vector<std::pair<std::string, Parameter*>>& params() const { return params_; }
  const OptimizerConfig& config() const { return config_; }

 private:
  OptimizerConfig config_;
  std::vector<std::pair<std::string, Parameter*>> params_;
  std::vector<Tensor> m_, v_;  // SGD: momentum in m_; AdamW: first and second moments
  int64_t steps_ = 0;
};

// Learning rate at `step` of `total`: linear warm-up over `warmup` steps, then cosine decay from
// base to base*final_fraction (or constant when schedule == "constant").
struct Schedule {
  std::string kind = "cosine";  // cosine | constant
  float base = 0.1f;
  int64_t warmup = 0;
  float final_fraction = 0.f;
  float at(int64_t step, int64_t total) const;
};

}  // namespace sn
