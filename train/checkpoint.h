// train/checkpoint.h — one checkpoint for all sub-models (safetensors): parameters and buffers
// ("model.*"), optimizer state ("optimizer.*"), and in the metadata the step, the recipe, the
// sampler and RNG states and the sub-model space, so that resume is bit-exact. Export writes one
// sub-model as a standalone dense checkpoint.
#pragma once

#include <string>

#include "models/model.h"
#include "train/config.h"
#include "train/optimizer.h"
#include "train/safetensors.h"
#include "train/sampler.h"

namespace sn {

struct CheckpointState {
  int64_t step = 0;
  int64_t skipped_steps = 0;  // steps skipped for a non-finite loss or gradient
  int64_t consecutive_skips = 0;  // of them, the last ones in a row (train.max_consecutive_skips)
  SamplerState sampler;
  GeneratorState dropout_rng;
};

void save_checkpoint(const std::string& path, Model& model, const Optimizer& optimizer,
                     const TrainConfig& config, const CheckpointState& state);

// The recipe stored in a checkpoint (to rebuild the model before loading its weights).
TrainConfig checkpoint_config(const std::string& path);

// Loads weights (and optimizer state when `optimizer` is given) into a model built from
// checkpoint_config(); refuses a checkpoint of another model or sub-model space. Without an
// optimizer the optimizer's tensors are neither read nor checksummed.
CheckpointState load_checkpoint(const std::string& path, Model& model, Optimizer* optimizer);

// The model a checkpoint holds, built from `config` (its stored recipe, possibly overridden)
// with its weights loaded, for eval, export and generation: no optimizer state is read, and
// the random initialisation the loaded weights would replace is skipped.
std::shared_ptr<Model> load_model(const std::string& path, const TrainConfig& config);

// `path` itself if it is a file, else path/checkpoint.safetensors.
std::string checkpoint_file(const std::string& path);

// Refuses (a one-line sn::Error) an output file of `op` that would destroy something: a
// directory, the checkpoint `input` being read, or any training checkpoint.
void check_output_file(const char* op, const std::string& out, const std::string& input);
// Refuses a training output folder that already holds a run's checkpoints (continue it with
// --resume instead); a missing or empty folder, or one with other files, is fine.
void check_fresh_run_dir(const std::string& dir);

// Writes sub-model `sub` as a dense checkpoint: each parameter cut to its window (contiguous),
// BatchNorm statistics of that sub-model only (with BnStats::recalibrate, recalibrate them
// first: recalibrate_batch_norms), metadata naming model, sub-model and the recipe.
void export_submodel(const std::string& path, Model& model, const SubModel& sub, const TrainConfig& config);

// A file written by export_submodel, loaded into the standalone dense network of its sub-model
// (whose space holds that one sub-model); `config` receives the recipe stored with it.
std::shared_ptr<Model> load_exported(const std::string& path, TrainConfig* config = nullptr);
// The same from a file already read (`path` names it in errors).
std::shared_ptr<Model> load_exported(const SafetensorsFile& file, const std::string& path, TrainConfig* config = nullptr);
// Whether `file` was written by export_submodel rather than by training.
bool is_exported(const SafetensorsFile& file);

}  // namespace sn
