// train/evaluate.h — evaluation of every sub-model from one set of weights: accuracy, loss,
// parameters, FLOPs and measured latency; the table, eval.csv and eval.svg (accuracy against
// FLOPs with the Pareto front marked).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "models/model.h"
#include "train/config.h"
#include "train/data.h"

namespace sn {

struct EvalRow {
  std::string submodel;
  int64_t params = 0, flops = 0;
  double accuracy = 0, loss = 0, latency_ms = 0;
};

// Evaluates `subs` on `test`. With BnStats::recalibrate, each sub-model's BatchNorm statistics
// are first recomputed on `calibration` batches (train mode, no gradients). `progress` is
// called after each sub-model with (done, total).
// For a model with stages (Model::stages) and no BatchNorm statistics per sub-model, sub-models
// that agree on the keys of its first stages share those stages' activations and recalibrated
// statistics, computed once (config.eval_share_prefixes; W2's 216 sub-models: about half the
// work; W3's depths share their blocks). Same kernels on the same batches: the same rows, bit
// for bit. Kept for each stage along one path: the activations of about config.eval_share_chunk
// test images (2048) and, when recalibrating, of the calibration batches (W2 at full width:
// about 300 MB and 190 MB). With recalibration the model is left with the statistics of one of
// the evaluated sub-models (which one depends on the path taken): recalibrate before exporting.
std::vector<EvalRow> evaluate(Model& model, const std::vector<SubModel>& subs, const Dataset& test,
                              const Dataset& calibration, const TrainConfig& config,
                              const std::function<void(int64_t, int64_t)>& progress = {});

// Recomputes sub-model `sub`'s BatchNorm statistics (its index `index` in the space) as the
// average over config.recalibration_batches batches of `data`, in train mode without gradients;
// leaves the model in eval mode. What BnStats::recalibrate does before evaluating or exporting.
// With recalibration_batches = 0 the statistics are left as they are (evaluate() does the same).
void recalibrate_batch_norms(Model& model, const SubModel& sub, int64_t index, const Dataset& data,
                             const TrainConfig& config);

// "all" (every sub-model, in index order) or sub-models in text form separated by ';'.
std::vector<SubModel> parse_submodel_list(const SubModelSpace& space, const std::string& text);

std::string format_table(const std::vector<EvalRow>& rows);
void write_eval_csv(const std::string& path, const std::vector<EvalRow>& rows);
void write_eval_svg(const std::string& path, const std::vector<EvalRow>& rows, const std::string& title);
// Indices of the rows on the accuracy/FLOPs Pareto front.
std::vector<size_t> pareto_front(const std::vector<EvalRow>& rows);

}  // namespace sn
