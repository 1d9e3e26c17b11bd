// models/registry.h — the model constructors behind make_model().
#pragma once

#include "models/model.h"

namespace sn {

std::shared_ptr<Model> make_fmnist_mlp(const ModelOptions& options);
std::shared_ptr<Model> make_fmnist_resnet(const ModelOptions& options);
std::shared_ptr<Model> make_fmnist_mobilenet(const ModelOptions& options);
std::shared_ptr<Model> make_fmnist_vit(const ModelOptions& options);
std::shared_ptr<Model> make_fortunes_llama(const ModelOptions& options);

}  // namespace sn
