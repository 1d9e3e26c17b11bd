// nn/module.cpp — parameter registry, traversal and the state dict.
#include "nn/module.h"

#include "autograd/ops.h"
#include "core/grad_mode.h"

namespace sn {

namespace {
thread_local bool skip_random_init = false;
}  // namespace

SkipRandomInit::SkipRandomInit() : previous_(skip_random_init) { skip_random_init = true; }
SkipRandomInit::~SkipRandomInit() { skip_random_init = previous_; }

Tensor init_normal(const Shape& sizes, float std, Generator& gen) {
  return skip_random_init ? empty(sizes) : randn(sizes, gen) * std;
}

Tensor init_uniform(const Shape& sizes, float bound, Generator& gen) {
  return skip_random_init ? empty(sizes) : affine(rand(sizes, gen), 2.f * bound, -bound);
}

Width fixed_width(int64_t n) {
  return [n](const SubModel&) { return n; };
}

Width axis_width(const std::string& axis) {
  return [axis](const SubModel& s) { return s.get(axis); };
}

Width axis_fraction(const std::string& axis, int64_t full) {
  return [axis, full](const SubModel& s) { return s.scaled(axis, full); };
}

Width gated(Width w, std::function<bool(const SubModel&)> active) {
  return [w = std::move(w), active = std::move(active)](const SubModel& s) { return active(s) ? w(s) : 0; };
}

Shape Parameter::active_shape(const SubModel& sub) const {
  Shape shape = tensor.sizes();
  for (size_t d = 0; d < nesting.size() && d < shape.size(); ++d)
    if (nesting[d]) shape[d] = nesting[d](sub);
  return shape;
}

void Module::train(bool training) {
  training_ = training;
  for (auto& [name, child] : children_) child->train(training);
}

std::vector<std::pair<std::string, Parameter*>> Module::named_parameters() {
  std::vector<std::pair<std::string, Parameter*>> out;
  for (auto& [name, p] : params_) out.emplace_back(name, &p);
  for (auto& [cname, child] : children_)
    for (auto& [name, p] : child->named_parameters()) out.emplace_back(cname + "." + name, p);
  return out;
}

void Module::collect_buffers(const std::string& prefix, std::vector<std::pair<std::string, Tensor*>>& out) {
  for (auto& [name, b] : buffers_) out.emplace_back(prefix + name, &b);
  for (auto& [cname, child] : children_) child->collect_buffers(prefix + cname + ".", out);
}

std::vector<std::pair<std::string, Tensor*>> Module::named_buffers() {
  std::vector<std::pair<std::string, Tensor*>> out;
  collect_buffers("", out);
  return out;
}

void Module::to(Device device) {
  for (auto& [name, p] : named_parameters()) p->tensor.relocate(device);
  for (auto& [name, b] : named_buffers()) b->relocate(device);
}

Device Module::device() {
  auto params = named_parameters();
  return params.empty() ? Device::cpu() : params.front().second->tensor.device();
}

void Module::zero_grad() {
  for (auto& [name, p] : named_parameters()) p->tensor.zero_grad();
}

int64_t Module::parameter_count(const SubModel& sub) {
  int64_t n = 0;
  for (auto& [name, p] : named_parameters()) n += numel_of(p->active_shape(sub));
  return n;
}

std::map<std::string, Tensor> Module::state_dict() {
  std::map<std::string, Tensor> out;
  for (auto& [name, p] : named_parameters()) out[name] = p->tensor;
  for (auto& [name, b] : named_buffers()) out[name] = *b;
  return out;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state) {
  NoGradGuard no_grad;
  std::map<std::string, Tensor> mine = state_dict();
  for (auto& [name, t] : state)
    SN_CHECK(mine.count(name), "load_state_dict", "unexpected entry '", name, "'");
  for (auto& [name, t] : mine) {
    auto it = state.find(name);
    SN_CHECK(it != state.end(), "load_state_dict", "missing entry '", name, "'");
    SN_CHECK(it->second.sizes() == t.sizes(), "load_state_dict", "'", name, "' has shape ",
             shape_str(it->second.sizes()), ", the model expects ", shape_str(t.sizes()));
    t.copy_(it->second.to(t.dtype()).to(t.device()));  // a checkpoint read on the CPU into a GPU model
  }
}

Tensor Module::register_parameter(const std::string& name, Tensor tensor, NestedShape nesting) {
  if (!tensor.requires_grad()) tensor.set_requires_grad(true);
  params_.emplace_back(name, Parameter{tensor, std::move(nesting)});
  return tensor;
}

Tensor Module::register_buffer(const std::string& name, Tensor tensor) {
  buffers_.emplace_back(name, tensor);
  return tensor;
}

Parameter& Module::parameter(const std::string& name) {
  for (auto& [n, p] : params_)
    if (n == name) return p;
  fail("Module", "no parameter '" + name + "'");
}

}  // namespace sn
