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
std::vector<EvalRow> evaluate(Model& model, const std::vector<SubModel>& subs, const Dataset& test,
                              const Dataset& calibration, const TrainConfig& config,
                              const std::function<void(int64_t, int64_t)>& progress = {});

std::string format_table(const std::vector<EvalRow>& rows);
void write_eval_csv(const std::string& path, const std::vector<EvalRow>& rows);
void write_eval_svg(const std::string& path, const std::vector<EvalRow>& rows, const std::string& title);
// Indices of the rows on the accuracy/FLOPs Pareto front.
std::vector<size_t> pareto_front(const std::vector<EvalRow>& rows);

}  // namespace sn
