// train/evaluate.cpp — per-sub-model evaluation and its reports.
#include "train/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "autograd/ops.h"
#include "core/grad_mode.h"
#include "kernels/backend.h"
#include "train/safetensors.h"

namespace sn {
namespace {

// Adds the number of rows whose arg-max logit is the label.
void count_correct(const Tensor& logits, const Tensor& labels, int64_t& correct) {
  std::vector<float> l = to_vector<float>(logits);
  std::vector<int64_t> t = to_vector<int64_t>(labels);
  const size_t C = size_t(logits.size(1));
  for (size_t i = 0; i < t.size(); ++i) {
    size_t best = 0;
    for (size_t c = 1; c < C; ++c)
      if (l[i * C + c] > l[i * C + best]) best = c;
    correct += int64_t(best) == t[i];
  }
}

// Under per_submodel statistics, says on stderr which sub-models are evaluated with untrained
// statistics (a row no BatchNorm layer has moved from mean 0, variance 1: a sub-model never
// sampled in training): their accuracy is not what the weights can do. Each layer's statistics
// are read once.
void warn_of_untouched_statistics(Model& model, const std::vector<SubModel>& subs, const TrainConfig& config) {
  const std::vector<BatchNorm2d*> bns = model.batch_norms();
  if (parse_bn_stats(config.bn_stats) != BnStats::per_submodel || bns.empty()) return;
  std::vector<bool> moved(size_t(bns.front()->running_mean.size(0)), false);  // per row
  for (BatchNorm2d* bn : bns) {
    const int64_t C = bn->running_mean.size(1);
    const std::vector<float> mean = to_vector<float>(bn->running_mean), var = to_vector<float>(bn->running_var);
    for (size_t i = 0; i < mean.size(); ++i) moved[i / size_t(C)] = moved[i / size_t(C)] || mean[i] != 0.f || var[i] != 1.f;
  }
  std::vector<std::string> untouched;
  for (const SubModel& sub : subs)
    if (!moved.at(size_t(model.space().index_of(sub)))) untouched.push_back(sub.str());
  if (untouched.empty()) return;
  std::fprintf(stderr,
               "warning: %zu of %zu sub-models (e.g. %s) have the initial BatchNorm statistics (mean 0, variance 1): "
               "never sampled in training; bn_stats = \"recalibrate\" computes them before evaluation\n",
               untouched.size(), subs.size(), untouched.front().c_str());
}

// The median time of config.latency_repeats forward passes of one small batch (after one more
// that warms the caches).
double measure_latency_ms(Model& model, const SubModel& sub, int64_t index, const Dataset& test,
                          const TrainConfig& config) {
  const Device device = model.device();
  Tensor probe = test.images.narrow(0, 0, std::min(config.latency_batch, test.size())).contiguous().to(device);
  std::vector<double> times;
  for (int64_t r = 0; r <= config.latency_repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    model.forward(probe, {sub, index, nullptr});
    backend_for(device).synchronize();  // GPU kernels run asynchronously: time their completion
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) times.push_back(ms);
  }
  std::nth_element(times.begin(), times.begin() + int64_t(times.size() / 2), times.end());
  return times[times.size() / 2];
}

// The calibration batches recalibrate_batch_norms runs, in its order.
std::vector<Tensor> calibration_batches(const Dataset& data, const TrainConfig& c, const Device& device) {
  BatchLoader loader(data, std::min(c.batch_size, data.size()), true, Augment{}, c.seed ^ 0x7e11, 0);
  const int64_t batches = std::min(c.recalibration_batches, loader.batches_per_epoch());
  std::vector<Tensor> out;
  for (int64_t b = 0; b < batches; ++b) out.push_back(loader.make(0, b).images.to(device));
  return out;
}

// BatchNorm layers averaging their statistics over the next batches, with the model in train
// mode, until this ends (also when a forward pass throws): then back to eval mode.
class Recalibrating {
 public:
  Recalibrating(Model& model, const std::vector<BatchNorm2d*>& bns) : model_(model), bns_(bns) {
    for (BatchNorm2d* bn : bns_) bn->begin_recalibration();
    model_.train();
  }
  ~Recalibrating() {
    for (BatchNorm2d* bn : bns_) bn->end_recalibration();
    model_.eval();
  }
  Recalibrating(const Recalibrating&) = delete;
  Recalibrating& operator=(const Recalibrating&) = delete;

 private:
  Model& model_;
  const std::vector<BatchNorm2d*>& bns_;
};

// Evaluation through the model's stages: the sub-models are grouped by their keys at stages
// 0..s, depth first, and each group's stage-s activations (of the test batches, and of the
// calibration batches with recalibration) are computed once from its parent's. Each stage's
// BatchNorm statistics are recalibrated once per group, from the same batches in the same order
// as recalibrate_batch_norms. The test set goes through in chunks of whole evaluation batches
// (evaluate()'s batches), which bounds the activations kept; the statistics of each group are
// recalibrated in the first chunk and restored in the others.
class StagedEvaluation {
 public:
  StagedEvaluation(Model& model, const std::vector<SubModel>& subs, const Dataset& test,
                   const Dataset& calibration, const TrainConfig& config, bool recal,
                   const std::function<void(int64_t, int64_t)>& progress)
      : model_(model), subs_(subs), test_(test), config_(config), progress_(progress), stages_(model.stages()),
        rows_(subs.size()), correct_(subs.size(), 0), loss_sum_(subs.size(), 0.0) {
    if (!recal) return;
    size_t staged = 0;
    for (const Model::Stage& stage : stages_) staged += stage.batch_norms.size();
    SN_CHECK(staged == model.batch_norms().size(), "eval", "the model's stages hold ", staged, " of its ",
             model.batch_norms().size(), " BatchNorm layers: each must belong to one stage");
    calibration_ = calibration_batches(calibration, config, model.device());
  }

  std::vector<EvalRow> run() {
    std::vector<size_t> all(subs_.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    model_.eval();
    const int64_t n = test_.size(), batch = config_.eval_batch_size;
    const int64_t chunk = batch * std::max<int64_t>(1, config_.eval_share_chunk / batch);  // whole batches
    chunks_ = (n + chunk - 1) / chunk;
    for (int64_t first = 0; first < n; first += chunk) {
      first_chunk_ = first == 0;
      last_chunk_ = first + chunk >= n;
      std::vector<Tensor> inputs;
      labels_.clear();
      for (int64_t start = first; start < std::min(n, first + chunk); start += batch) {
        const int64_t len = std::min(batch, n - start);
        inputs.push_back(test_.images.narrow(0, start, len).to(model_.device()));
        labels_.push_back(test_.labels.narrow(0, start, len).to(model_.device()));
      }
      visit(0, all, {}, inputs, calibration_);
    }
    return rows_;
  }

 private:
  void visit(size_t s, const std::vector<size_t>& members, const std::vector<int64_t>& path,
             const std::vector<Tensor>& test_in, const std::vector<Tensor>& calibration_in) {
    std::map<std::vector<int64_t>, std::vector<size_t>> groups;  // by the key of stage s
    for (size_t i : members) groups[stages_[s].key(subs_[i])].push_back(i);
    for (const auto& [key, group] : groups) {
      const SubModel& sub = subs_[group.front()];  // any member: they agree on stages 0..s
      const ForwardContext ctx{sub, model_.space().index_of(sub), nullptr};
      std::vector<int64_t> here = path;  // this group: the stage, then the keys so far
      here.push_back(-1 - int64_t(s));
      here.insert(here.end(), key.begin(), key.end());
      std::vector<Tensor> calibration_out;
      if (!calibration_.empty()) recalibrate(s, here, ctx, calibration_in, calibration_out);
      std::vector<Tensor> test_out;
      for (const Tensor& x : test_in) test_out.push_back(model_.forward_stage(int64_t(s), x, ctx));
      if (s + 1 < stages_.size()) visit(s + 1, group, here, test_out, calibration_out);
      else finish(group, test_out);
    }
  }

  // Stage s's BatchNorm statistics for this group: computed in the first chunk (which also gives
  // the calibration activations its children need), restored in the others.
  void recalibrate(size_t s, const std::vector<int64_t>& group_path, const ForwardContext& ctx,
                   const std::vector<Tensor>& calibration_in, std::vector<Tensor>& calibration_out) {
    const std::vector<BatchNorm2d*>& bns = stages_[s].batch_norms;
    std::vector<Tensor>& saved = saved_stats_[group_path];
    if (!first_chunk_) {
      for (size_t b = 0; b < bns.size(); ++b) {
        bns[b]->running_mean.copy_(saved[2 * b]);
        bns[b]->running_var.copy_(saved[2 * b + 1]);
      }
      return;
    }
    {
      Recalibrating recalibrating(model_, bns);
      for (const Tensor& x : calibration_in) calibration_out.push_back(model_.forward_stage(int64_t(s), x, ctx));
    }
    if (last_chunk_) return;  // nothing to restore later
    for (BatchNorm2d* bn : bns) {
      saved.push_back(bn->running_mean.clone());
      saved.push_back(bn->running_var.clone());
    }
  }

  // Adds this chunk's counts to the rows of the sub-models whose logits these are (one sub-model,
  // listed once or more); the first chunk also measures their latency, the last fills the rows.
  void finish(const std::vector<size_t>& group, const std::vector<Tensor>& logits) {
    int64_t correct = 0;
    double loss_sum = 0;
    for (size_t b = 0; b < logits.size(); ++b) {
      loss_sum = double(cross_entropy(logits[b], labels_[b], Reduction::sum).item());
      count_correct(logits[b], labels_[b], correct);
      for (size_t i : group) loss_sum_[i] += loss_sum;  // batch by batch, in order, as evaluate()
    }
    for (size_t i : group) {
      const SubModel& sub = subs_[i];
      SN_CHECK(sub == subs_[group.front()], "eval", "the model's stage keys do not tell ", sub.str(), " from ",
               subs_[group.front()].str());
      EvalRow& row = rows_[i];
      correct_[i] += correct;
      if (first_chunk_) row.latency_ms = measure_latency_ms(model_, sub, model_.space().index_of(sub), test_, config_);
      report_progress();
      if (!last_chunk_) continue;
      row.submodel = sub.str();
      row.params = model_.parameter_count(sub);
      row.flops = model_.flops(sub);
      row.accuracy = double(correct_[i]) / double(test_.size());
      row.loss = loss_sum_[i] / double(test_.size());
    }
  }

  // Every sub-model goes through every chunk: progress counts sub-models' worth of those passes.
  void report_progress() {
    const int64_t done = ++passes_ / chunks_;
    if (progress_ && done > reported_) progress_(reported_ = done, int64_t(subs_.size()));
  }

  Model& model_;
  const std::vector<SubModel>& subs_;
  const Dataset& test_;
  const TrainConfig& config_;
  const std::function<void(int64_t, int64_t)>& progress_;
  const std::vector<Model::Stage> stages_;
  std::vector<Tensor> calibration_, labels_;
  std::map<std::vector<int64_t>, std::vector<Tensor>> saved_stats_;  // by group path
  std::vector<EvalRow> rows_;
  std::vector<int64_t> correct_;
  std::vector<double> loss_sum_;
  bool first_chunk_ = true, last_chunk_ = true;
  int64_t chunks_ = 1, passes_ = 0, reported_ = 0;
};

}  // namespace

std::vector<SubModel> parse_submodel_list(const SubModelSpace& space, const std::string& text) {
  std::vector<SubModel> subs;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = text.find(';', begin);
    if (end == std::string::npos) end = text.size();
    const std::string one = trim_spaces(text.substr(begin, end - begin));
    if (one == "all") {
      for (const SubModel& s : space.enumerate()) subs.push_back(s);
    } else if (!one.empty()) {
      subs.push_back(space.parse(one));
    }
    begin = end + 1;
  }
  SN_CHECK(!subs.empty(), "eval", "no sub-models named in '", text, "' (use 'all' or e.g. 'width=4/8;width=8/8')");
  return subs;
}

void recalibrate_batch_norms(Model& model, const SubModel& sub, int64_t index, const Dataset& data,
                             const TrainConfig& c) {
  NoGradGuard no_grad;
  auto bns = model.batch_norms();
  if (bns.empty()) return;
  if (c.recalibration_batches == 0) {  // the statistics stay as trained, as evaluate() keeps them
    model.eval();
    return;
  }
  Recalibrating recalibrating(model, bns);
  for (const Tensor& x : calibration_batches(data, c, model.device())) model.forward(x, {sub, index, nullptr});
}

std::vector<EvalRow> evaluate(Model& model, const std::vector<SubModel>& subs, const Dataset& test,
                              const Dataset& calibration, const TrainConfig& config,
                              const std::function<void(int64_t, int64_t)>& progress) {
  NoGradGuard no_grad;
  const bool recal = parse_bn_stats(config.bn_stats) == BnStats::recalibrate && config.recalibration_batches > 0 &&
                     !model.batch_norms().empty();
  std::vector<EvalRow> rows;
  const int64_t n = test.size();
  const Device device = model.device();
  SN_CHECK(n > 0, "eval", "the test set is empty");
  // Shared stages need statistics that do not belong to one sub-model.
  const bool shareable = parse_bn_stats(config.bn_stats) != BnStats::per_submodel || model.batch_norms().empty();
  if (config.eval_share_prefixes && shareable && subs.size() > 1 && !model.stages().empty()) {
    std::vector<EvalRow> staged;
    try {
      staged = StagedEvaluation(model, subs, test, calibration, config, recal, progress).run();
    } catch (...) {
      model.train();
      throw;
    }
    model.train();
    return staged;
  }
  warn_of_untouched_statistics(model, subs, config);
  for (const SubModel& sub : subs) {
    const int64_t index = model.space().index_of(sub);
    if (recal) recalibrate_batch_norms(model, sub, index, calibration, config);
    model.eval();
    EvalRow row;
    row.submodel = sub.str();
    row.params = model.parameter_count(sub);
    row.flops = model.flops(sub);
    int64_t correct = 0;
    double loss_sum = 0;
    for (int64_t start = 0; start < n; start += config.eval_batch_size) {
      const int64_t len = std::min(config.eval_batch_size, n - start);
      Tensor x = test.images.narrow(0, start, len).to(device), y = test.labels.narrow(0, start, len).to(device);
      Tensor logits = model.forward(x, {sub, index, nullptr});
      loss_sum += double(cross_entropy(logits, y, Reduction::sum).item());
      count_correct(logits, y, correct);
    }
    row.accuracy = double(correct) / double(n);
    row.loss = loss_sum / double(n);
    row.latency_ms = measure_latency_ms(model, sub, index, test, config);
    rows.push_back(row);
    if (progress) progress(int64_t(rows.size()), int64_t(subs.size()));
  }
  model.train();
  return rows;
}

std::string format_table(const std::vector<EvalRow>& rows) {
  size_t w = 8;
  for (const EvalRow& r : rows) w = std::max(w, r.submodel.size());
  std::ostringstream os;
  char line[512];
  std::snprintf(line, sizeof(line), "%-*s %10s %12s %9s %8s %11s\n", int(w), "submodel", "params", "MFLOPs",
                "accuracy", "loss", "latency_ms");
  os << line;
  for (const EvalRow& r : rows) {
    std::snprintf(line, sizeof(line), "%-*s %10lld %12.2f %9.4f %8.4f %11.3f\n", int(w), r.submodel.c_str(),
                  (long long)r.params, double(r.flops) * 1e-6, r.accuracy, r.loss, r.latency_ms);
    os << line;
  }
  return os.str();
}

void write_eval_csv(const std::string& path, const std::vector<EvalRow>& rows) {
  std::ostringstream os;
  os << "submodel,params,flops,accuracy,loss,latency_ms\n";
  for (const EvalRow& r : rows) {
    os << '"' << r.submodel << "\"," << r.params << ',' << r.flops << ',';
    char buf[128];
    std::snprintf(buf, sizeof(buf), "%.6f,%.6f,%.4f\n", r.accuracy, r.loss, r.latency_ms);
    os << buf;
  }
  write_file_atomically(path, os.str());
}

std::vector<size_t> pareto_front(const std::vector<EvalRow>& rows) {
  std::vector<size_t> order(rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return rows[a].flops != rows[b].flops ? rows[a].flops < rows[b].flops : rows[a].accuracy > rows[b].accuracy;
  });
  std::vector<size_t> front;
  double best = -1.0;
  for (size_t i : order)
    if (rows[i].accuracy > best) {
      front.push_back(i);
      best = rows[i].accuracy;
    }
  return front;
}

void write_eval_svg(const std::string& path, const std::vector<EvalRow>& rows, const std::string& title) {
  SN_CHECK(!rows.empty(), "eval", "nothing to plot");
  const double W = 720, H = 480, left = 70, right = 20, top = 40, bottom = 60;
  double fmin = 1e300, fmax = 0, amin = 1, amax = 0;
  for (const EvalRow& r : rows) {
    fmin = std::min(fmin, double(r.flops));
    fmax = std::max(fmax, double(r.flops));
    amin = std::min(amin, r.accuracy);
    amax = std::max(amax, r.accuracy);
  }
  // Log scale on FLOPs: sub-model costs span orders of magnitude.
  const double lx0 = std::log10(std::max(fmin, 1.0)), lx1 = std::log10(std::max(fmax, fmin * 1.01 + 1));
  const double pad = std::max(0.005, (amax - amin) * 0.05);
  amin = std::max(0.0, amin - pad);
  amax = std::min(1.0, amax + pad);
  auto X = [&](double f) { return left + (std::log10(std::max(f, 1.0)) - lx0) / std::max(lx1 - lx0, 1e-9) * (W - left - right); };
  auto Y = [&](double a) { return top + (1.0 - (a - amin) / std::max(amax - amin, 1e-9)) * (H - top - bottom); };
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
     << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  os << "<text x=\"" << W / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" << title << "</text>\n";
  os << "<line x1=\"" << left << "\" y1=\"" << H - bottom << "\" x2=\"" << W - right << "\" y2=\"" << H - bottom
     << "\" stroke=\"black\"/>\n<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\""
     << H - bottom << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 4; ++i) {  // axis ticks
    double a = amin + (amax - amin) * i / 4.0, y = Y(a);
    os << "<text x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">" << std::round(a * 1000) / 10
       << "%</text>\n<line x1=\"" << left << "\" y1=\"" << y << "\" x2=\"" << W - right << "\" y2=\"" << y
       << "\" stroke=\"#eee\"/>\n";
    double lf = lx0 + (lx1 - lx0) * i / 4.0;
    char label[32];
    std::snprintf(label, sizeof(label), "%.3g", std::pow(10.0, lf) * 1e-6);
    os << "<text x=\"" << X(std::pow(10.0, lf)) << "\" y=\"" << H - bottom + 18 << "\" text-anchor=\"middle\">"
       << label << "</text>\n";
  }
  os << "<text x=\"" << (left + W - right) / 2 << "\" y=\"" << H - 15
     << "\" text-anchor=\"middle\">MFLOPs per example (log scale)</text>\n";
  os << "<text transform=\"translate(16," << (top + H - bottom) / 2 << ") rotate(-90)\" text-anchor=\"middle\">test accuracy</text>\n";
  for (const EvalRow& r : rows)
    os << "<circle cx=\"" << X(double(r.flops)) << "\" cy=\"" << Y(r.accuracy) << "\" r=\"3\" fill=\"#4a7ebb\" "
       << "fill-opacity=\"0.6\"><title>" << r.submodel << "</title></circle>\n";
  std::vector<size_t> front = pareto_front(rows);
  os << "<polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\" points=\"";
  for (size_t i : front) os << X(double(rows[i].flops)) << "," << Y(rows[i].accuracy) << " ";
  os << "\"/>\n";
  for (size_t i : front)
    os << "<circle cx=\"" << X(double(rows[i].flops)) << "\" cy=\"" << Y(rows[i].accuracy)
       << "\" r=\"4.5\" fill=\"none\" stroke=\"#d62728\"><title>Pareto: " << rows[i].submodel << "</title></circle>\n";
  os << "<text x=\"" << W - right - 4 << "\" y=\"" << top + 14 << "\" text-anchor=\"end\" fill=\"#d62728\">"
     << "Pareto front (" << front.size() << " of " << rows.size() << " sub-models)</text>\n</svg>\n";
  write_file_atomically(path, os.str());
}

}  // namespace sn
