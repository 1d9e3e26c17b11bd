// train/optimizer.cpp — optimizer updates on parameter windows, clipping, the schedule.
#include "train/optimizer.h"

#include <cmath>

#include "autograd/ops.h"
#include "core/grad_mode.h"

namespace sn {

UpdateSemantics parse_update_semantics(const std::string& text) {
  if (text == "dense") return UpdateSemantics::dense;
  if (text == "nested") return UpdateSemantics::nested;
  fail("optimizer", "unknown update semantics '" + text + "' (dense or nested)");
}

Optimizer::Optimizer(Module& model, OptimizerConfig config) : config_(std::move(config)) {
  SN_CHECK(config_.name == "sgd" || config_.name == "adamw", "optimizer", "unknown optimizer '",
           config_.name, "' (sgd or adamw)");
  params_ = model.named_parameters();
  for (auto& [name, p] : params_) {
    m_.push_back(zeros(p->tensor.sizes(), DType::f32, p->tensor.device()));
    v_.push_back(config_.name == "adamw" ? zeros(p->tensor.sizes(), DType::f32, p->tensor.device()) : Tensor());
  }
}

void Optimizer::step(float lr, const std::vector<Shape>& windows) {
  SN_CHECK(windows.size() == params_.size(), "optimizer", "got ", windows.size(), " windows for ",
           params_.size(), " parameters");
  NoGradGuard no_grad;
  ++steps_;
  const bool nested = config_.semantics == UpdateSemantics::nested;
  const float c1 = 1.f - std::pow(config_.beta1, float(steps_));
  const float c2 = 1.f - std::pow(config_.beta2, float(steps_));
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& p = params_[i].second->tensor;
    Tensor g = p.grad();
    if (!g.defined()) {  // never reached by backward: a zero gradient
      if (nested) continue;
      g = zeros(p.sizes(), DType::f32, p.device());
    }
    const Shape window = nested ? windows[i] : p.sizes();
    if (numel_of(window) == 0) continue;
    Backend& k = backend_for(p.device());
    Tensor pw = p.detach().prefix(window), gw = g.prefix(window), mw = m_[i].prefix(window);
    if (config_.name == "sgd") {
      k.sgd_step(pw, gw, mw, lr, config_.momentum, config_.weight_decay, config_.nesterov);
    } else {
      k.adamw_step(pw, gw, mw, v_[i].prefix(window), lr, config_.beta1, config_.beta2, config_.eps,
                   config_.weight_decay, c1, c2);
    }
    p.bump_version();
  }
}

void Optimizer::zero_grad(const std::vector<Shape>& windows) {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = params_[i].second->tensor.grad();
    if (g.defined() && numel_of(windows[i]) > 0) g.prefix(windows[i]).fill_(0.f);
  }
}

double Optimizer::clip_grad_norm(float max_norm, const std::vector<Shape>& windows) {
  NoGradGuard no_grad;
  std::vector<Tensor> grads, squares;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = params_[i].second->tensor.grad();
    if (!g.defined() || numel_of(windows[i]) == 0) continue;
    grads.push_back(g.prefix(windows[i]));
    squares.push_back(sum(square(grads.back())).reshape({1}));
  }
  // One read-back for all parameters (on a GPU each read waits for the device).
  double total = 0.0;
  if (!squares.empty())
    for (float s : to_vector<float>(cat(squares, 0))) total += double(s);
  double norm = std::sqrt(total);
  if (max_norm > 0.f && norm > max_norm) {
    float scale = float(max_norm / (norm + 1e-6));
    for (Tensor& g : grads) backend_for(g.device()).affine(g, g, scale, 0.f);
  }
  return norm;
}

std::map<std::string, Tensor> Optimizer::state() const {
  std::map<std::string, Tensor> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out[params_[i].first + ".m"] = m_[i];
    if (v_[i].defined()) out[params_[i].first + ".v"] = v_[i];
  }
  out["step"] = from_vector(std::vector<int64_t>{steps_}, {1});
  return out;
}

void Optimizer::load_state(const std::map<std::string, Tensor>& state) {
  NoGradGuard no_grad;
  auto take = [&](const std::string& name, Tensor& into) {
    auto it = state.find(name);
    SN_CHECK(it != state.end(), "optimizer", "checkpoint lacks optimizer state '", name, "'");
    SN_CHECK(it->second.sizes() == into.sizes(), "optimizer", "state '", name, "' has shape ",
             shape_str(it->second.sizes()), ", expected ", shape_str(into.sizes()));
    into.copy_(it->second.to(into.device()));
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    take(params_[i].first + ".m", m_[i]);
    if (v_[i].defined()) take(params_[i].first + ".v", v_[i]);
  }
  auto it = state.find("step");
  SN_CHECK(it != state.end(), "optimizer", "checkpoint lacks the optimizer step count");
  steps_ = to_vector<int64_t>(it->second).at(0);
}

float Schedule::at(int64_t step, int64_t total) const {
  if (warmup > 0 && step < warmup) return base * float(step + 1) / float(warmup);
  if (kind == "constant") return base;
  SN_CHECK(kind == "cosine", "schedule", "unknown schedule '", kind, "' (cosine or constant)");
  const double span = double(std::max<int64_t>(total - warmup, 1));
  const double t = std::min(1.0, double(step - warmup) / span);
  const double lo = double(base) * final_fraction;
  return float(lo + (double(base) - lo) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t)));
}

}  // namespace sn
