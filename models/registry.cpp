// models/registry.cpp — models by name.
#include "models/registry.h"

namespace sn {

std::shared_ptr<Model> make_model(const ModelOptions& options) {
  if (options.name == "fmnist-mlp") return make_fmnist_mlp(options);
  if (options.name == "fmnist-resnet") return make_fmnist_resnet(options);
  if (options.name == "fmnist-mobilenet") return make_fmnist_mobilenet(options);
  fail("model", "unknown model '" + options.name + "' (known: fmnist-mlp, fmnist-resnet, fmnist-mobilenet)");
}

}  // namespace sn
