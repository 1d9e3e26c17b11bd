// train/checkpoint.cpp — checkpoints and export.
#include "train/checkpoint.h"

#include <sys/stat.h>

#include <filesystem>

#include "autograd/ops.h"
#include "core/grad_mode.h"
#include "train/safetensors.h"

namespace sn {
namespace {

constexpr const char* kFormat = "sortednet-checkpoint-1";
constexpr const char* kDenseFormat = "sortednet-dense-1";

std::string describe_space(const SubModelSpace& space) {
  std::string s;
  for (const Axis& a : space.axes()) {
    if (!s.empty()) s += ';';
    s += a.name + "=";
    for (size_t i = 0; i < a.sizes.size(); ++i) {
      if (i) s += '|';
      s += a.format(a.sizes[i]);
    }
  }
  return s;
}

const std::string& meta(const SafetensorsFile& f, const std::string& key, const std::string& path) {
  auto it = f.metadata.find(key);
  SN_CHECK(it != f.metadata.end(), "checkpoint", "'", path, "' lacks metadata '", key,
           "' (not a sortednet checkpoint?)");
  return it->second;
}

// A number in [0, max] (std::stoull alone would take "-7" as 2^64 - 7, and leading blanks).
uint64_t meta_u64(const SafetensorsFile& f, const std::string& key, const std::string& path,
                  uint64_t max = UINT64_MAX) {
  const std::string& v = meta(f, key, path);
  if (!v.empty() && v[0] >= '0' && v[0] <= '9') {
    try {
      size_t used = 0;
      uint64_t x = std::stoull(v, &used);
      if (used == v.size() && x <= max) return x;
    } catch (const std::exception&) {
    }
  }
  fail("checkpoint", "'" + path + "' metadata '" + key + "' is not a number in [0, " + std::to_string(max) + "]: '" +
                         v + "'");
}
// A count of steps or sub-models: at most 2^40, so that products with batch counts cannot overflow.
int64_t meta_count(const SafetensorsFile& f, const std::string& key, const std::string& path) {
  return int64_t(meta_u64(f, key, path, uint64_t(1) << 40));
}

}  // namespace

std::string checkpoint_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return path + "/checkpoint.safetensors";
  return path;
}

void check_output_file(const char* op, const std::string& out, const std::string& input) {
  struct stat o {}, i {};
  if (::stat(out.c_str(), &o) != 0) return;  // a new file
  SN_CHECK(!S_ISDIR(o.st_mode), op, "'", out, "' is a directory; give a file name");
  SN_CHECK(!(::stat(input.c_str(), &i) == 0 && o.st_dev == i.st_dev && o.st_ino == i.st_ino), op, "'", out,
           "' is the checkpoint being read; write elsewhere");
  bool training = false;
  try {
    const auto metadata = load_safetensors_metadata(out);
    auto it = metadata.find("format");
    training = it != metadata.end() && it->second == kFormat;
  } catch (const Error&) {  // not a checkpoint: free to replace
  }
  SN_CHECK(!training, op, "'", out, "' holds a training checkpoint; refusing to overwrite it");
}

void check_fresh_run_dir(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "checkpoint.safetensors" || (name.rfind("checkpoint-", 0) == 0 && name.size() > 23 &&
                                             name.compare(name.size() - 12, 12, ".safetensors") == 0))
      fail("train", "'" + dir + "' already holds a run (" + name +
                        "); continue it with --resume, or choose another --out");
  }
}

void save_checkpoint(const std::string& path, Model& model, const Optimizer& optimizer,
                     const TrainConfig& config, const CheckpointState& state) {
  std::map<std::string, Tensor> tensors;
  for (auto& [name, t] : model.state_dict()) tensors["model." + name] = t;
  for (auto& [name, t] : optimizer.state()) tensors["optimizer." + name] = t;
  std::map<std::string, std::string> m{
      {"format", kFormat},
      {"model", config.model},
      {"space", describe_space(model.space())},
      {"step", std::to_string(state.step)},
      {"skipped_steps", std::to_string(state.skipped_steps)},
      {"consecutive_skips", std::to_string(state.consecutive_skips)},
      {"config", config.to_toml()},
      {"sampler.seed", std::to_string(state.sampler.rng.seed)},
      {"sampler.stream", std::to_string(state.sampler.rng.stream)},
      {"sampler.counter", std::to_string(state.sampler.rng.counter)},
      {"sampler.used", std::to_string(state.sampler.rng.used)},
      {"sampler.cursor", std::to_string(state.sampler.cursor)},
      {"dropout.seed", std::to_string(state.dropout_rng.seed)},
      {"dropout.stream", std::to_string(state.dropout_rng.stream)},
      {"dropout.counter", std::to_string(state.dropout_rng.counter)},
      {"dropout.used", std::to_string(state.dropout_rng.used)},
  };
  save_safetensors(path, tensors, m);
}

TrainConfig checkpoint_config(const std::string& path) {
  SafetensorsFile f;  // the header only: load_checkpoint reads and verifies the tensors
  f.metadata = load_safetensors_metadata(path);
  SN_CHECK(meta(f, "format", path) == kFormat, "checkpoint", "'", path, "' has format '",
           meta(f, "format", path), "', expected ", kFormat);
  return parse_config(meta(f, "config", path), {}, path + " (stored recipe)");
}

CheckpointState load_checkpoint(const std::string& path, Model& model, Optimizer* optimizer) {
  // Without an optimizer (eval, export, generate) its moments, two thirds of an AdamW
  // checkpoint, are not read.
  TensorFilter wanted;
  if (!optimizer) wanted = [](const std::string& name) { return name.rfind("optimizer.", 0) != 0; };
  SafetensorsFile f = load_safetensors(path, wanted);
  SN_CHECK(meta(f, "format", path) == kFormat, "checkpoint", "'", path, "' is not a sortednet checkpoint");
  const std::string space = describe_space(model.space());
  SN_CHECK(meta(f, "space", path) == space, "checkpoint", "'", path, "' holds sub-model space '",
           meta(f, "space", path), "' but the model has '", space, "'");
  std::map<std::string, Tensor> weights, opt;
  for (auto& [name, t] : f.tensors) {
    if (name.rfind("model.", 0) == 0) weights[name.substr(6)] = t;
    else if (name.rfind("optimizer.", 0) == 0) opt[name.substr(10)] = t;
    else fail("checkpoint", "'" + path + "' has an unexpected tensor '" + name + "'");
  }
  try {
    model.load_state_dict(weights);
  } catch (const Error& e) {
    fail("checkpoint", "'" + path + "' does not match model " + meta(f, "model", path) + ": " + e.what());
  }
  if (optimizer) optimizer->load_state(opt);
  CheckpointState s;
  s.step = meta_count(f, "step", path);
  s.skipped_steps = f.metadata.count("skipped_steps") ? meta_count(f, "skipped_steps", path) : 0;
  s.consecutive_skips = f.metadata.count("consecutive_skips") ? meta_count(f, "consecutive_skips", path) : 0;
  // A generator's `used` counts the words taken from its current block of 4.
  s.sampler.rng = {meta_u64(f, "sampler.seed", path), meta_u64(f, "sampler.stream", path),
                   meta_u64(f, "sampler.counter", path), uint32_t(meta_u64(f, "sampler.used", path, 4))};
  s.sampler.cursor = meta_count(f, "sampler.cursor", path);
  s.dropout_rng = {meta_u64(f, "dropout.seed", path), meta_u64(f, "dropout.stream", path),
                   meta_u64(f, "dropout.counter", path), uint32_t(meta_u64(f, "dropout.used", path, 4))};
  return s;
}

std::shared_ptr<Model> load_model(const std::string& path, const TrainConfig& config) {
  std::shared_ptr<Model> model;
  {
    SkipRandomInit skip;  // load_checkpoint sets every parameter and buffer, or refuses the file
    model = make_model({config.model, parse_bn_stats(config.bn_stats), config.seed});
  }
  load_checkpoint(path, *model, nullptr);
  return model;
}

void export_submodel(const std::string& path, Model& model, const SubModel& sub, const TrainConfig& config) {
  NoGradGuard no_grad;
  const int64_t index = model.space().index_of(sub);
  std::map<std::string, Tensor> tensors;
  for (auto& [name, p] : model.named_parameters()) {
    Shape shape = p->active_shape(sub);
    if (numel_of(shape) > 0) tensors[name] = p->tensor.prefix(shape).contiguous();
  }
  // BatchNorm statistics: this sub-model's row, cut to its channels; a dense model has one row.
  for (auto& [name, b] : model.named_buffers()) {
    const std::string owner = name.substr(0, name.rfind('.'));
    auto weight = tensors.find(owner + ".weight");
    if (weight == tensors.end()) continue;  // the layer is not used by this sub-model
    const int64_t row = b->size(0) > 1 ? index : 0;
    tensors[name] = b->select(0, row).narrow(0, 0, weight->second.size(0)).unsqueeze(0).contiguous();
  }
  save_safetensors(path, tensors,
                   {{"format", kDenseFormat}, {"model", config.model}, {"submodel", sub.str()},
                    {"bn_stats", config.bn_stats}, {"config", config.to_toml()}});
}

bool is_exported(const SafetensorsFile& f) {
  auto it = f.metadata.find("format");
  return it != f.metadata.end() && it->second == kDenseFormat;
}

std::shared_ptr<Model> load_exported(const std::string& path, TrainConfig* config) {
  return load_exported(load_safetensors(path), path, config);
}

std::shared_ptr<Model> load_exported(const SafetensorsFile& f, const std::string& path, TrainConfig* config) {
  SN_CHECK(meta(f, "format", path) == kDenseFormat, "checkpoint", "'", path, "' has format '",
           meta(f, "format", path), "', expected an exported sub-model (", kDenseFormat, ")");
  TrainConfig c = parse_config(meta(f, "config", path), {}, path + " (stored recipe)");
  std::shared_ptr<Model> model;
  {
    SkipRandomInit skip;  // load_state_dict sets every parameter and buffer, or refuses the file
    model = make_model({meta(f, "model", path), parse_bn_stats(meta(f, "bn_stats", path)), c.seed,
                        meta(f, "submodel", path)});
  }
  try {
    model->load_state_dict(f.tensors);
  } catch (const Error& e) {
    fail("checkpoint", "'" + path + "' does not match sub-model " + meta(f, "submodel", path) + ": " + e.what());
  }
  model->eval();
  if (config) *config = c;
  return model;
}

}  // namespace sn
