// train/config.h — a training recipe: read from TOML (configs/*.toml), overridden by
// `--set section.key=value`, validated (an unknown key or a wrong type is one clear error),
// and printed back as TOML for checkpoints.
#pragma once

#include <string>
#include <vector>

#include "nn/layers.h"
#include "train/optimizer.h"
#include "train/sampler.h"

namespace sn {

struct TrainConfig {
  // [model]
  std::string model = "fmnist-mlp";
  std::string bn_stats = "per_submodel";  // per_submodel | shared | recalibrate
  // [data]
  std::string dataset = "fashion-mnist";  // fashion-mnist | idx | cifar10
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  int64_t train_limit = 0;  // use the first N training examples (0: all)
  int64_t test_limit = 0;   // evaluate on the first N test examples (0: all)
  int64_t batch_size = 128;
  int64_t crop_padding = 0;
  bool flip = false;
  // [train]
  int64_t epochs = 1;
  int64_t max_steps = 0;  // stop after this many optimizer steps (0: epochs decide)
  int64_t submodels_per_step = 4;
  std::string sampler = "sandwich";
  double sampler_power = -1.0;  // weighted: probability ∝ (flops/max)^power
  bool new_batch_per_submodel = false;
  double largest_loss_weight = 1.0;  // the full model's loss counts this much more
  double distill_alpha = 0.0;        // in-place distillation from the largest (sandwich)
  double distill_temperature = 1.0;
  std::string independent;  // a sub-model: train it alone (the baseline), e.g. "width=128"
  std::string update = "dense";  // dense | nested optimizer semantics
  uint64_t seed = 0;
  int64_t log_every = 50;
  double clip_grad_norm = 0.0;
  int64_t checkpoint_every = 0;  // steps between checkpoints (0: at the end only)
  int64_t keep_checkpoints = 1;  // > 1: also keep the last N as checkpoint-STEP.safetensors
  std::string nonfinite = "skip";  // a NaN/Inf loss or gradient: skip the step | stop
  int64_t max_consecutive_skips = 10;  // skip: stop after this many non-finite steps in a row
  // Under mpirun: every rank trains the same sub-models (synced, from the shared seed) or draws
  // its own (per-rank; the union of their windows is reduced). data.batch_size is the global batch.
  std::string data_parallel = "synced";
  double comm_timeout_s = 300.0;
  std::string device = "cpu";  // cpu | cuda | cuda:N: where the model trains and evaluates
  std::string objective = "soft";  // language models: soft (all exits, one pass) | sampled
  std::string precision = "tf32";  // GPU matrix products: fp32 | tf32 | bf16 (autocast, fp32 master weights)
  int64_t context = 256;           // language models: bytes per training window  // a collective waiting longer ends the job (a rank died or stalls)
  // [optimizer]
  std::string optimizer = "sgd";
  double lr = 0.1;
  double momentum = 0.9;
  bool nesterov = true;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, adam_eps = 1e-8;
  std::string schedule = "cosine";
  int64_t warmup_steps = 0;
  double final_lr_fraction = 0.0;
  // [eval]
  int64_t eval_batch_size = 500;
  int64_t latency_batch = 1;
  int64_t latency_repeats = 5;
  int64_t recalibration_batches = 10;
  std::string eval_submodels = "all";  // "all" or sub-models separated by ';'
  // Compute the activations that sub-models share once (models with stages; train/evaluate.h),
  // holding those of about this many test images at a time (whole evaluation batches, at least one).
  bool eval_share_prefixes = true;
  int64_t eval_share_chunk = 2048;

  OptimizerConfig optimizer_config() const;
  Schedule schedule_config() const;
  std::string to_toml() const;
};

// Reads `path` (TOML) and applies `overrides` ("section.key=value", value in TOML syntax or a
// bare string). Throws sn::Error with one line for an unknown key, a bad type or a bad value.
TrainConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
TrainConfig parse_config(const std::string& toml_text, const std::vector<std::string>& overrides = {},
                         const std::string& source = "config");
// The checks both of those make: sn::Error with one line for a value or a combination that makes
// no sense. The Trainer runs them too, for recipes built in code.
void validate(const TrainConfig& config);

}  // namespace sn
