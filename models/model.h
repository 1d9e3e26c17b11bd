// models/model.h — what the trainer needs of a sorted model: its sub-model space, a forward
// pass for any sub-model, and the cost of each sub-model.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace sn {

class Model : public Layer {
 public:
  const SubModelSpace& space() const { return space_; }
  // Floating-point operations (2 per multiply-add) of one example's forward pass.
  virtual int64_t flops(const SubModel& sub) const = 0;
  // One example's input shape, e.g. {1, 28, 28}.
  virtual Shape input_shape() const = 0;
  virtual int64_t classes() const = 0;
  // The BatchNorm layers (for recalibration); none by default.
  virtual std::vector<BatchNorm2d*> batch_norms() { return {}; }

  // The forward pass as a chain of stages, for evaluating many sub-models at once
  // (train/evaluate.cpp): a stage's output depends on its input and on a few axes only, so
  // sub-models that agree on the keys of stages 0..s share stage s's activations and need them
  // computed once (W2: every sub-model of one width and depth.s1 has the same stem and first
  // stage). None by default: evaluation then runs one whole forward pass per sub-model.
  struct Stage {
    // What the stage's output depends on besides its input, e.g. the values of some axes:
    // sub-models with equal keys at stages 0..s share stage s's output.
    std::function<std::vector<int64_t>(const SubModel&)> key;
    std::vector<BatchNorm2d*> batch_norms;  // the BatchNorm layers inside it
  };
  virtual std::vector<Stage> stages() { return {}; }
  // Stage s on the previous stage's output (on the input for s = 0); the last one gives the
  // logits. Chained over every stage it is forward().
  virtual Tensor forward_stage(int64_t s, const Tensor& h, const ForwardContext& ctx);

 protected:
  SubModelSpace space_;
};

struct ModelOptions {
  std::string name;                          // fmnist-mlp, fmnist-resnet, fmnist-mobilenet
  BnStats bn_stats = BnStats::per_submodel;
  uint64_t seed = 0;
  // A sub-model (text form): build the standalone dense network of exactly that size, whose
  // space holds that one sub-model (what `sortednet export` files load into).
  std::string dense;
};

// A model by name; an unknown name is an sn::Error listing the known ones.
std::shared_ptr<Model> make_model(const ModelOptions& options);

// Makes a model of your own known to make_model() — and so to the Trainer, checkpoints and
// evaluation — under `name` (a built-in name cannot be taken; registering a name again replaces
// it). Call it before building a Trainer, e.g. at the start of main().
using ModelFactory = std::function<std::shared_ptr<Model>(const ModelOptions&)>;
void register_model(const std::string& name, ModelFactory factory);
// Every name make_model() accepts: the built-in models, then the registered ones.
std::vector<std::string> model_names();

}  // namespace sn
