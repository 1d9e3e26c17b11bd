// train/trainer.h — the sorted update rule end to end: each optimizer step samples sub-models,
// accumulates their gradients in the shared parameters (same mini-batch or a new one each),
// optionally distils the largest into the others, clips, and takes one step; checkpoints and
// metrics along the way; at the end every sub-model is evaluated.
#pragma once

#include <memory>
#include <string>

#include "models/model.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/data.h"
#include "train/evaluate.h"
#include "train/optimizer.h"
#include "train/sampler.h"

namespace sn {

// Loads the recipe's training and test sets (limits applied).
std::pair<Dataset, Dataset> load_datasets(const TrainConfig& config);

class Trainer {
 public:
  // Writes into out_dir (created if missing). With resume, continues from
  // out_dir/checkpoint.safetensors when it exists.
  Trainer(TrainConfig config, std::string out_dir, bool resume = false);

  // Trains to the end of the recipe; returns the evaluation of every sub-model (or of the one
  // sub-model in independent mode) and writes checkpoint, metrics.jsonl, eval.csv, eval.svg.
  std::vector<EvalRow> run();
  // Trains until `until_step` (exclusive) without the final evaluation (tests, resume).
  void train_until(int64_t until_step);

  Model& model() { return *model_; }
  Optimizer& optimizer() { return *optimizer_; }
  int64_t step() const { return step_; }
  int64_t total_steps() const { return total_steps_; }
  void save(const std::string& path);
  const TrainConfig& config() const { return config_; }

 private:
  void train_step();
  std::vector<int64_t> next_submodels();

  TrainConfig config_;
  std::string out_dir_;
  Dataset train_set_, test_set_;
  std::shared_ptr<Model> model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<BatchLoader> loader_;
  Schedule schedule_;
  Generator dropout_rng_;
  int64_t independent_ = -1;  // the fixed sub-model's index in independent mode
  int64_t step_ = 0, total_steps_ = 0, batches_per_step_ = 1;
  double last_loss_ = 0.0;
};

}  // namespace sn
