// models/registry.cpp — models by name: the built-in workloads and those users register.
#include "models/registry.h"

#include <map>
#include <mutex>

namespace sn {
namespace {

const std::map<std::string, ModelFactory>& builtin_models() {
  static const std::map<std::string, ModelFactory> models{
      {"fmnist-mlp", make_fmnist_mlp}, {"fmnist-mobilenet", make_fmnist_mobilenet}, {"fmnist-resnet", make_fmnist_resnet},
      {"fmnist-vit", make_fmnist_vit}, {"fortunes-llama", make_fortunes_llama}};
  return models;
}

struct UserModels {
  std::mutex mutex;
  std::map<std::string, ModelFactory> factories;
};
UserModels& user_models() {
  static UserModels models;
  return models;
}

}  // namespace

void register_model(const std::string& name, ModelFactory factory) {
  SN_CHECK(!name.empty(), "register_model", "the model name is empty");
  SN_CHECK(factory != nullptr, "register_model", "no factory given for model '", name, "'");
  SN_CHECK(!builtin_models().count(name), "register_model", "'", name, "' is a built-in model");
  UserModels& m = user_models();
  std::lock_guard<std::mutex> lock(m.mutex);
  m.factories[name] = std::move(factory);
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& [name, f] : builtin_models()) names.push_back(name);
  UserModels& m = user_models();
  std::lock_guard<std::mutex> lock(m.mutex);
  for (const auto& [name, f] : m.factories) names.push_back(name);
  return names;
}

Tensor Model::forward_stage(int64_t s, const Tensor&, const ForwardContext&) {
  fail("model", "this model has no stage " + std::to_string(s) + " (it lists no stages)");
}

std::shared_ptr<Model> make_model(const ModelOptions& options) {
  if (auto it = builtin_models().find(options.name); it != builtin_models().end()) return it->second(options);
  ModelFactory factory;
  {
    UserModels& m = user_models();
    std::lock_guard<std::mutex> lock(m.mutex);
    if (auto it = m.factories.find(options.name); it != m.factories.end()) factory = it->second;
  }
  if (factory) {
    std::shared_ptr<Model> model = factory(options);
    SN_CHECK(model != nullptr, "model", "the factory of '", options.name, "' returned no model");
    return model;
  }
  std::string known;
  for (const std::string& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  fail("model", "unknown model '" + options.name + "' (known: " + known + ")");
}

}  // namespace sn
