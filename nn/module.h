// nn/module.h — Module: named parameters that know their nested shape under each sub-model,
// buffers, children, train/eval, and the state dict.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "nn/submodel.h"

namespace sn {

// The active size of one dim under a sub-model (a neuron or channel count; 0 = unused).
using Width = std::function<int64_t(const SubModel&)>;
Width fixed_width(int64_t n);                           // always n
Width axis_width(const std::string& axis);              // the axis value itself (e.g. 256 neurons)
Width axis_fraction(const std::string& axis, int64_t full);  // full * value / max (width=k/8)
// `w` while `active(sub)`, else 0: a block beyond the sub-model's depth uses no parameters.
Width gated(Width w, std::function<bool(const SubModel&)> active);

// The prefix of a parameter a sub-model uses, one Width per dim.
using NestedShape = std::vector<Width>;

struct Parameter {
  Tensor tensor;
  NestedShape nesting;  // empty: the whole tensor in every sub-model
  Shape active_shape(const SubModel& sub) const;
  Tensor active(const SubModel& sub) const { return tensor.prefix(active_shape(sub)); }
};

// Random initial values of a parameter: N(0, std²) and U(-bound, bound). While a SkipRandomInit
// is alive on this thread they are left unset (uninitialised memory), for a model whose every
// parameter is about to be loaded (load_state_dict refuses a state that misses one).
Tensor init_normal(const Shape& sizes, float std, Generator& gen);
Tensor init_uniform(const Shape& sizes, float bound, Generator& gen);

class SkipRandomInit {
 public:
  SkipRandomInit();
  ~SkipRandomInit();
  SkipRandomInit(const SkipRandomInit&) = delete;
  SkipRandomInit& operator=(const SkipRandomInit&) = delete;

 private:
  bool previous_;
};

// What a forward pass knows besides its input.
struct ForwardContext {
  const SubModel& sub;
  int64_t sub_index = 0;       // the sub-model's index in its space (per-sub-model BN statistics)
  Generator* gen = nullptr;    // dropout masks
};

class Module {
 public:
  virtual ~Module() = default;

  void train(bool training = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Parameters and buffers of this module and its children, with dotted names, in
  // registration order (deterministic).
  std::vector<std::pair<std::string, Parameter*>> named_parameters();
  std::vector<std::pair<std::string, Tensor*>> named_buffers();
  void zero_grad();
  // Moves every parameter and buffer to `device` in place (layers keep their handles).
  void to(Device device);
  // Where the parameters live (the CPU for a module without any).
  Device device();
  int64_t parameter_count(const SubModel& sub);  // elements a sub-model uses

  // Parameters and buffers by name (tensors share memory with the module).
  std::map<std::string, Tensor> state_dict();
  // Copies values in; a missing, unexpected or mis-shaped entry is an sn::Error naming it.
  void load_state_dict(const std::map<std::string, Tensor>& state);

 protected:
  Tensor register_parameter(const std::string& name, Tensor tensor, NestedShape nesting = {});
  Tensor register_buffer(const std::string& name, Tensor tensor);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    children_.emplace_back(name, module);
    return module;
  }
  Parameter& parameter(const std::string& name);

  // Hook for modules with buffers kept outside the plain list (BatchNorm's per-sub-model stats).
  virtual void collect_buffers(const std::string& prefix, std::vector<std::pair<std::string, Tensor*>>& out);

 private:
  std::vector<std::pair<std::string, Parameter>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// A module with the common forward signature.
class Layer : public Module {
 public:
  virtual Tensor forward(const Tensor& x, const ForwardContext& ctx) = 0;
};

}  // namespace sn
