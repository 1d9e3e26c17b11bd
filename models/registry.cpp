// models/registry.cpp — models by name.
#include "models/registry.h"

namespace sn {

std::shared_ptr<Model> make_model(const ModelOptions& options) {
  if (options.name == "fmnist-mlp") return make_fmnist_mlp(options);
  if (options.name == "fmnist-resnet") return make_fmnist_resnet(options);
  fail("model", "unknown model '" + options.name + "' (known: fmnist-mlp, fmnist-resnet)");
}

}  // namespace sn
