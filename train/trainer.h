// train/trainer.h — the sorted update rule end to end: each optimizer step samples sub-models,
// accumulates their gradients in the shared parameters (same mini-batch or a new one each),
// optionally distils the largest into the others, clips, and takes one step; checkpoints and
// metrics along the way; at the end every sub-model is evaluated.
#pragma once

#include <memory>
#include <string>

#include "models/model.h"
#include "train/checkpoint.h"
#include "train/comm.h"
#include "train/config.h"
#include "train/data.h"
#include "train/evaluate.h"
#include "train/optimizer.h"
#include "train/sampler.h"

namespace sn {

// Thrown by Trainer::run()/train_until() after SIGINT or SIGTERM, once the current step finished
// and a checkpoint of it was written: the run continues with --resume.
class TrainingInterrupted : public Error {
 public:
  TrainingInterrupted(int signal, int64_t step, const std::string& checkpoint);
  int signal() const { return signal_; }

 private:
  int signal_;
};

// train.nonfinite for a step whose `what` ("loss" or "gradient") is NaN or infinite, at `where`
// (e.g. "step 13 (sub-models width=8/8)"): with "skip" it counts the step in `skipped` and
// `in_a_row` and warns on stderr; with "stop", or past train.max_consecutive_skips in a row, it
// fails with one line naming the last good checkpoint (`saved_step` < 0: none was written).
void skip_or_stop_nonfinite(const TrainConfig& config, const std::string& what, const std::string& where,
                            const std::string& checkpoint, int64_t saved_step, int64_t& skipped, int64_t& in_a_row);

// Loads the recipe's training and test sets (limits applied).
std::pair<Dataset, Dataset> load_datasets(const TrainConfig& config);

class Trainer {
 public:
  // Writes into out_dir (created if missing). With resume, continues from
  // out_dir/checkpoint.safetensors when it exists (or, if that file is unusable, from the newest
  // usable checkpoint-STEP.safetensors that train.keep_checkpoints kept).
  Trainer(TrainConfig config, std::string out_dir, bool resume = false);

  // Trains to the end of the recipe; returns the evaluation of every sub-model (or of the one
  // sub-model in independent mode) and writes checkpoint, metrics.jsonl, eval.csv, eval.svg.
  std::vector<EvalRow> run();
  // Trains until `until_step` (exclusive) without the final evaluation (tests, resume).
  void train_until(int64_t until_step);

  Model& model() { return *model_; }
  Communicator& comm() { return *comm_; }
  bool is_lead() const { return comm_->rank() == 0; }  // the rank that logs, evaluates and saves
  Optimizer& optimizer() { return *optimizer_; }
  int64_t step() const { return step_; }
  int64_t skipped_steps() const { return skipped_steps_; }
  int64_t total_steps() const { return total_steps_; }
  void save(const std::string& path);
  // The periodic checkpoint: out_dir/checkpoint.safetensors, plus checkpoint-STEP.safetensors
  // files pruned to the last train.keep_checkpoints.
  void checkpoint();
  const TrainConfig& config() const { return config_; }

 private:
  void train_step();
  std::vector<int64_t> next_submodels();
  void resume_from_checkpoint();
  // Data parallel: rank 0's parameters, optimizer state, step and RNG states on every rank.
  void broadcast_state();
  // Data parallel: the gradients (and the loss and stop request) summed over ranks.
  void reduce_step(std::vector<Shape>& windows, double& loss_sum);
  // A non-finite loss or gradient: skip the step (counting it) or stop, per train.nonfinite.
  void handle_nonfinite(const std::string& what, const std::vector<int64_t>& subs);

  TrainConfig config_;
  std::string out_dir_;
  Device device_ = Device::cpu();  // where the model trains (train.device)
  Dataset train_set_, test_set_;
  std::shared_ptr<Model> model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<BatchLoader> loader_;
  std::unique_ptr<Communicator> comm_;
  Schedule schedule_;
  Generator dropout_rng_;
  int64_t independent_ = -1;  // the fixed sub-model's index in independent mode
  int64_t step_ = 0, total_steps_ = 0, batches_per_step_ = 1;
  int64_t skipped_steps_ = 0, consecutive_skips_ = 0;
  int64_t last_saved_step_ = -1;
  int stop_signal_ = 0;  // a stop request seen by any rank this step
  double last_loss_ = 0.0;
  std::vector<Tensor> buffer_backup_;  // the model's buffers before the step (restored if it is skipped)
};

}  // namespace sn
