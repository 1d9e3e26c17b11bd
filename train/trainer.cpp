// train/trainer.cpp — the training loop.
#include "train/trainer.h"

#include "kernels/backend.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "autograd/ops.h"
#include "core/failpoint.h"
#include "core/grad_mode.h"
#include "train/stop_signals.h"

namespace sn {
namespace {

void make_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  SN_CHECK(!ec, "train", "cannot create '", dir, "': ", ec.message());
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string duration(double seconds) {
  char buf[32];
  const int s = int(seconds + 0.5);
  if (s >= 3600) std::snprintf(buf, sizeof(buf), "%dh%02dm", s / 3600, (s / 60) % 60);
  else std::snprintf(buf, sizeof(buf), "%dm%02ds", s / 60, s % 60);
  return buf;
}

// Soft-target cross-entropy: mean over rows of -sum(teacher * log_softmax(logits)).
Tensor soft_cross_entropy(const Tensor& logits, const Tensor& teacher) {
  return sum(mul(teacher, log_softmax(logits))) * (-1.f / float(logits.size(0)));
}

// checkpoint-STEP.safetensors files in dir, newest first.
std::vector<std::pair<int64_t, std::string>> numbered_checkpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const std::string prefix = "checkpoint-", suffix = ".safetensors";
    if (name.size() <= prefix.size() + suffix.size() || name.rfind(prefix, 0) != 0 ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18) continue;
    out.emplace_back(std::stoll(digits), entry.path().string());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

}  // namespace

TrainingInterrupted::TrainingInterrupted(int signal, int64_t step, const std::string& checkpoint)
    : Error(detail::concat("train: stopped by ", signal_name(signal), " after step ", step, "; saved ", checkpoint,
                           " (continue with --resume)")),
      signal_(signal) {}

std::pair<Dataset, Dataset> load_datasets(const TrainConfig& c) {
  Dataset train, test;
  if (c.dataset == "cifar10") {
    std::vector<std::string> files;
    for (int i = 1; i <= 5; ++i) files.push_back(c.data_dir + "/data_batch_" + std::to_string(i) + ".bin");
    train = load_cifar10(files);
    test = load_cifar10({c.data_dir + "/test_batch.bin"});
  } else {
    train = load_fashion_mnist(c.data_dir, true);
    test = load_fashion_mnist(c.data_dir, false);
  }
  if (c.train_limit > 0) train = train.head(c.train_limit);
  if (c.test_limit > 0) test = test.head(c.test_limit);
  return {train, test};
}

namespace {

// One process: local. Under mpirun: NCCL for a GPU recipe where it is built (MPI otherwise,
// GPU tensors then staged through host memory), MPI for a CPU recipe.
std::unique_ptr<Communicator> make_job_communicator(const TrainConfig& c) {
  if (!launched_by_mpi()) return make_local_communicator();
#ifdef SN_WITH_NCCL_COMM
  if (Device::parse(c.device).is_cuda()) return make_nccl_communicator(c.comm_timeout_s);
#endif
  return make_mpi_communicator(c.comm_timeout_s);
}

}  // namespace

Trainer::Trainer(TrainConfig config, std::string out_dir, bool resume)
    : config_(std::move(config)), out_dir_(std::move(out_dir)), dropout_rng_(config_.seed, 0xd0) {
  validate(config_);  // a recipe built in code gets the checks a TOML one gets
  comm_ = make_job_communicator(config_);  // first: an NCCL rank selects its GPU before CUDA is used
  make_dir(out_dir_);
  std::tie(train_set_, test_set_) = load_datasets(config_);
  model_ = make_model({config_.model, parse_bn_stats(config_.bn_stats), config_.seed});
  device_ = Device::parse(config_.device);
  check_device(device_);
  apply_matmul_precision(config_.precision);
  model_->to(device_);  // before the optimizer, whose state is allocated beside each parameter
  const SubModelSpace& space = model_->space();
  SN_CHECK(model_->input_shape() == Shape(train_set_.images.sizes().begin() + 1, train_set_.images.sizes().end()),
           "train", "model ", config_.model, " expects inputs ", shape_str(model_->input_shape()),
           ", the data set has ", shape_str(train_set_.images.sizes()));
  if (!config_.independent.empty()) independent_ = space.index_of(space.parse(config_.independent));
  else (void)parse_submodel_list(space, config_.eval_submodels);  // a typo fails now, not after training
  const int64_t side = train_set_.images.dim() >= 3 ? std::min(train_set_.images.size(-1), train_set_.images.size(-2))
                                                    : 0;
  SN_CHECK(config_.crop_padding <= side || config_.crop_padding == 0, "config",
           "'data.crop_padding' must be at most the image side (", side, "), got ", config_.crop_padding);
  std::vector<int64_t> flops;
  for (const SubModel& s : space.enumerate()) flops.push_back(model_->flops(s));
  const int64_t per_step = independent_ >= 0 ? 1 : config_.submodels_per_step;
  // Independent mode never samples; its (unused) sampler must still accept one per step.
  const SamplerKind kind = independent_ >= 0 ? SamplerKind::uniform : parse_sampler(config_.sampler);
  // per-rank: each rank its own sampler stream; synced: all ranks the same.
  const bool per_rank = config_.data_parallel == "per-rank" && comm_->size() > 1;
  const uint64_t sampler_seed = per_rank ? config_.seed + 0x9e3779b97f4a7c15ull * uint64_t(comm_->rank() + 1) : config_.seed;
  sampler_ = std::make_unique<Sampler>(space, kind, per_step, sampler_seed, flops, config_.sampler_power);
  const SamplerState own_sampler = sampler_->state();  // per-rank: this rank's stream at step 0
  optimizer_ = std::make_unique<Optimizer>(*model_, config_.optimizer_config());
  schedule_ = config_.schedule_config();
  loader_ = std::make_unique<BatchLoader>(train_set_, config_.batch_size, true,
                                          Augment{config_.crop_padding, config_.flip}, config_.seed, 2, comm_->rank(),
                                          comm_->size());
  loader_->set_pinned(device_.is_cuda());  // batches copied to the GPU without the host waiting
  batches_per_step_ = config_.new_batch_per_submodel ? per_step : 1;
  total_steps_ = config_.epochs * loader_->batches_per_epoch() / batches_per_step_;
  if (config_.max_steps > 0) total_steps_ = std::min(total_steps_, config_.max_steps);
  SN_CHECK(total_steps_ > 0, "train", "the recipe has no steps (", train_set_.size(), " examples, batch ",
           config_.batch_size, ")");
  if (resume && is_lead()) resume_from_checkpoint();
  if (comm_->size() > 1) {
    broadcast_state();  // rank 0's step, sampler and dropout streams (restored from a checkpoint)
    if (per_rank) {  // this rank's own stream, advanced to the step (checkpoints keep rank 0's)
      sampler_->set_state(own_sampler);
      for (int64_t s = 0; s < step_; ++s) sampler_->next();
    }
    // Each rank's slice of the batch gets masks of its own: with rank 0's stream on every rank,
    // the ranks' examples would share their dropout masks.
    GeneratorState dropout = dropout_rng_.state();
    dropout.stream += uint64_t(comm_->rank());
    dropout_rng_.set_state(dropout);
  }
  loader_->seek(step_ * batches_per_step_ / loader_->batches_per_epoch(),
                step_ * batches_per_step_ % loader_->batches_per_epoch());
}

void Trainer::resume_from_checkpoint() {
  std::vector<std::string> candidates;
  const std::string latest = out_dir_ + "/checkpoint.safetensors";
  if (file_exists(latest)) candidates.push_back(latest);
  for (const auto& [step, path] : numbered_checkpoints(out_dir_)) candidates.push_back(path);
  std::string first_error;
  for (const std::string& path : candidates) {
    try {
      CheckpointState s = load_checkpoint(path, *model_, optimizer_.get());
      if (!first_error.empty())
        std::fprintf(stderr, "warning: %s; resuming from %s (step %lld) instead\n", first_error.c_str(), path.c_str(),
                     (long long)s.step);
      step_ = s.step;
      skipped_steps_ = s.skipped_steps;
      consecutive_skips_ = s.consecutive_skips;
      last_saved_step_ = s.step;
      sampler_->set_state(s.sampler);
      dropout_rng_.set_state(s.dropout_rng);
      return;
    } catch (const Error& e) {
      if (first_error.empty()) first_error = e.what();
    }
  }
  if (!first_error.empty()) fail("train", "cannot resume: " + first_error);
}

void Trainer::broadcast_state() {
  Communicator& c = *comm_;
  auto bcast = [&](const Tensor& t) {
    SN_CHECK(t.is_contiguous(), "train", "cannot broadcast a non-contiguous tensor ", t.str());
    c.broadcast_tensor(t, 0);
  };
  for (auto& [name, p] : model_->named_parameters()) bcast(p->tensor);
  for (auto& [name, b] : model_->named_buffers()) bcast(*b);
  std::map<std::string, Tensor> opt = optimizer_->state();
  for (auto& [name, t] : opt) bcast(t);
  optimizer_->load_state(opt);
  struct Scalars {
    int64_t step, skipped, in_a_row, last_saved;
    SamplerState sampler;
    GeneratorState dropout;
  } s{step_, skipped_steps_, consecutive_skips_, last_saved_step_, sampler_->state(), dropout_rng_.state()};
  c.broadcast(&s, sizeof(s), 0);
  step_ = s.step;
  skipped_steps_ = s.skipped;
  consecutive_skips_ = s.in_a_row;
  last_saved_step_ = s.last_saved;
  sampler_->set_state(s.sampler);
  dropout_rng_.set_state(s.dropout);
}

void Trainer::reduce_step(std::vector<Shape>& windows, double& loss_sum) {
  const int64_t ranks = comm_->size();
  if (config_.data_parallel == "per-rank") union_windows(*comm_, windows);
  std::vector<Tensor> grads;
  for (auto& [name, p] : model_->named_parameters()) {
    const size_t i = grads.size();
    Tensor g = p->tensor.grad();
    if (!g.defined() && numel_of(windows[i]) > 0) {  // another rank's sub-model used it: zeros here
      p->tensor.grad_slot()->grad = zeros(p->tensor.sizes(), DType::f32, p->tensor.device());
      g = p->tensor.grad();
    }
    grads.push_back(g);
  }
  // Each rank's gradient is of its mean loss over its slice: their mean is the global batch's.
  all_reduce_windows(*comm_, grads, windows, 1.f / float(ranks));
  float scalars[2] = {float(loss_sum), float(stop_requested())};
  comm_->all_reduce_sum(scalars, 2);
  loss_sum = double(scalars[0]) / double(ranks);
  if (scalars[1] > 0 && stop_signal_ == 0) stop_signal_ = stop_requested() ? stop_requested() : SIGTERM;
}

void skip_or_stop_nonfinite(const TrainConfig& config, const std::string& what, const std::string& where,
                            const std::string& checkpoint, int64_t saved_step, int64_t& skipped, int64_t& in_a_row) {
  const std::string last = saved_step >= 0
                               ? detail::concat("the last good checkpoint is ", checkpoint, " (step ", saved_step, ")")
                               : std::string("no checkpoint was written yet");
  if (config.nonfinite == "stop") fail("train", detail::concat("non-finite ", what, " at ", where, "; stopped: ", last));
  ++skipped;
  if (++in_a_row > config.max_consecutive_skips)
    fail("train", detail::concat("non-finite ", what, " in ", in_a_row, " steps in a row, the last at ", where,
                                 "; stopped: ", last));
  std::fprintf(stderr, "warning: non-finite %s at %s: step skipped (%lld so far)\n", what.c_str(), where.c_str(),
               (long long)skipped);
}

void Trainer::handle_nonfinite(const std::string& what, const std::vector<int64_t>& subs) {
  std::string names;
  for (int64_t s : subs) names += (names.empty() ? "" : "; ") + model_->space().at(s).str();
  skip_or_stop_nonfinite(config_, what, detail::concat("step ", step_, " (sub-models ", names, ")"),
                         out_dir_ + "/checkpoint.safetensors", last_saved_step_, skipped_steps_, consecutive_skips_);
}

std::vector<int64_t> Trainer::next_submodels() {
  if (independent_ >= 0) return {independent_};
  return sampler_->next();
}

void Trainer::train_step() {
  const SubModelSpace& space = model_->space();
  const std::vector<int64_t> subs = next_submodels();
  const auto params = model_->named_parameters();
  std::vector<Shape> windows(params.size());
  for (size_t i = 0; i < params.size(); ++i) windows[i] = Shape(params[i].second->tensor.dim(), 0);
  const bool distill = config_.distill_alpha > 0 && subs.size() > 1 && subs[0] == space.size() - 1;
  const float T = float(config_.distill_temperature), alpha = float(config_.distill_alpha);
  Tensor teacher;
  Batch batch;
  std::vector<Tensor> ce_values;  // read back once per step: on a GPU each read waits for the device
  // The forward passes update BatchNorm's running statistics; a step skipped for a non-finite
  // value must not leave them there (an infinite activation would poison them for evaluation).
  const bool may_skip = config_.nonfinite == "skip";
  if (may_skip) {
    const auto buffers = model_->named_buffers();
    if (buffer_backup_.size() != buffers.size()) {
      buffer_backup_.clear();
      for (auto& [name, b] : buffers) buffer_backup_.push_back(empty_like(*b));
    }
    for (size_t i = 0; i < buffers.size(); ++i) buffer_backup_[i].copy_(*buffers[i].second);
  }
  for (size_t j = 0; j < subs.size(); ++j) {
    if (j == 0 || config_.new_batch_per_submodel) {
      batch = loader_->next();
      batch.images = batch.images.to(device_, /*non_blocking=*/true);
      batch.labels = batch.labels.to(device_, /*non_blocking=*/true);
      if (failpoint("nan-batch"))  // fault tests: an input that makes every activation non-finite
        batch.images = full(batch.images.sizes(), INFINITY, DType::f32, device_);
    }
    const SubModel sub = space.at(subs[j]);
    Tensor logits = model_->forward(batch.images, {sub, subs[j], &dropout_rng_});
    Tensor ce = cross_entropy(logits, batch.labels);
    Tensor loss = ce;
    if (distill && j > 0) loss = ce * (1.f - alpha) + soft_cross_entropy(logits * (1.f / T), teacher) * (alpha * T * T);
    // The largest sub-model's weight balances it among the step's others; trained alone, it is 1.
    const bool weighted = subs[j] == space.size() - 1 && independent_ < 0;
    const float weight = float(weighted ? config_.largest_loss_weight : 1.0) / float(subs.size());
    (loss * weight).backward();
    if (distill && j == 0) {
      NoGradGuard no_grad;
      teacher = softmax(logits.detach() * (1.f / T));
    }
    ce_values.push_back(ce.detach().reshape({1}));
    for (size_t i = 0; i < params.size(); ++i) {  // the union of the nested windows
      Shape a = params[i].second->active_shape(sub);
      for (size_t d = 0; d < a.size(); ++d) windows[i][d] = std::max(windows[i][d], a[d]);
    }
    if (failpoint("nan-grad") && params[0].second->tensor.grad().defined())  // fault tests
      params[0].second->tensor.grad().prefix(windows[0]).fill_(NAN);
    crash_point("accumulate");  // crash tests: killed between two sub-models of one step
    if (failpoint("stall")) std::this_thread::sleep_for(std::chrono::hours(1));  // a hung rank, for tests
  }
  double loss_sum = 0;
  bool finite_loss = true;
  for (float ce_value : to_vector<float>(cat(ce_values, 0))) {
    finite_loss = finite_loss && std::isfinite(ce_value);
    loss_sum += ce_value;
  }
  if (comm_->size() > 1) reduce_step(windows, loss_sum);
  else stop_signal_ = stop_requested();
  finite_loss = finite_loss && std::isfinite(loss_sum);
  // The gradient norm (clipped when asked) also tells whether any gradient is NaN or infinite.
  const double norm = optimizer_->clip_grad_norm(float(config_.clip_grad_norm), windows);
  if (!finite_loss || !std::isfinite(norm)) {
    const auto buffers = model_->named_buffers();
    for (size_t i = 0; i < buffers.size() && i < buffer_backup_.size(); ++i)
      buffers[i].second->copy_(buffer_backup_[i]);
    handle_nonfinite(finite_loss ? "gradient" : "loss", subs);
  } else {
    consecutive_skips_ = 0;
    optimizer_->step(schedule_.at(step_, total_steps_), windows);
    crash_point("optimizer-step");  // crash tests: parameters updated, gradients not yet cleared
  }
  optimizer_->zero_grad(windows);
  last_loss_ = loss_sum / double(subs.size());
  ++step_;
}

void Trainer::save(const std::string& path) {
  save_checkpoint(path, *model_, *optimizer_, config_,
                  {step_, skipped_steps_, consecutive_skips_, sampler_->state(), dropout_rng_.state()});
}

void Trainer::checkpoint() {
  if (!is_lead()) {  // rank 0 writes; the others only keep count
    last_saved_step_ = step_;
    return;
  }
  const std::string latest = out_dir_ + "/checkpoint.safetensors";
  if (config_.keep_checkpoints <= 1) {
    save(latest);
  } else {
    // checkpoint-STEP is written once; checkpoint.safetensors becomes a second name for it,
    // swapped in atomically (a hard link renamed over the old one).
    const std::string numbered = out_dir_ + "/checkpoint-" + std::to_string(step_) + ".safetensors";
    save(numbered);
    const std::string link = latest + ".link";
    ::unlink(link.c_str());
    if (::link(numbered.c_str(), link.c_str()) == 0) {
      SN_CHECK(::rename(link.c_str(), latest.c_str()) == 0, "train", "cannot rename '", link, "' to '", latest,
               "': ", std::strerror(errno));
    } else {
      save(latest);  // a file system without hard links
    }
    auto kept = numbered_checkpoints(out_dir_);
    for (size_t i = size_t(config_.keep_checkpoints); i < kept.size(); ++i) ::unlink(kept[i].second.c_str());
  }
  last_saved_step_ = step_;
}

void Trainer::train_until(int64_t until_step) {
  const bool lead = is_lead();  // only rank 0 logs and saves
  // mpirun hands ranks a pseudo-terminal even when its own output goes to a file: plain lines.
  const bool tty = lead && ::isatty(STDOUT_FILENO) && !launched_by_mpi();
  std::ofstream metrics;
  if (lead) {
    metrics.open(out_dir_ + "/metrics.jsonl", step_ == 0 ? std::ios::trunc : std::ios::app);  // a fresh run starts it
    SN_CHECK(metrics.good(), "train", "cannot write '", out_dir_, "/metrics.jsonl'");
  }
  const auto start = std::chrono::steady_clock::now();
  const int64_t bytes_before = comm_->stats().bytes_reduced;
  const int64_t first = step_, end = std::min(until_step, total_steps_);
  double window_loss = 0;
  int64_t window_steps = 0;
  StopSignals signals;
  while (step_ < end) {
    train_step();
    window_loss += last_loss_;
    ++window_steps;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double per_step = elapsed / double(step_ - first);
    if (lead && (step_ % config_.log_every == 0 || step_ == end)) {
      const double lr = schedule_.at(step_ - 1, total_steps_);
      const int64_t examples = config_.batch_size * batches_per_step_;
      char line[512];
      std::snprintf(line, sizeof(line),
                    "{\"step\": %lld, \"epoch\": %.3f, \"lr\": %.6g, \"loss\": %.6f, \"examples_per_s\": %.1f, "
                    "\"elapsed_s\": %.2f, \"skipped_steps\": %lld, \"ranks\": %d, \"reduced_bytes_per_step\": %.0f}\n",
                    (long long)step_, double(step_ * batches_per_step_) / double(loader_->batches_per_epoch()), lr,
                    window_loss / double(window_steps), double(examples) / per_step, elapsed, (long long)skipped_steps_,
                    comm_->size(), double(comm_->stats().bytes_reduced - bytes_before) / double(step_ - first));
      metrics << line << std::flush;
      if (!tty) {
        char speed[32];
        if (per_step >= 1.0) std::snprintf(speed, sizeof(speed), "%.2f s/step", per_step);
        else std::snprintf(speed, sizeof(speed), "%.1f ms/step", per_step * 1e3);
        std::printf("step %lld/%lld  loss %.4f  lr %.4g  %s  ETA %s\n", (long long)step_, (long long)total_steps_,
                    window_loss / double(window_steps), lr, speed, duration(per_step * double(total_steps_ - step_)).c_str());
        std::fflush(stdout);
      }
    }
    if (step_ % config_.log_every == 0 || step_ == end) {
      window_loss = 0;
      window_steps = 0;
    }
    if (tty) {
      const int width = 30, filled = int(width * step_ / total_steps_);
      std::printf("\r[%s%s] %3d%%  step %lld/%lld  loss %.4f  ETA %s   ", std::string(size_t(filled), '#').c_str(),
                  std::string(size_t(width - filled), '.').c_str(), int(100 * step_ / total_steps_),
                  (long long)step_, (long long)total_steps_, last_loss_,
                  duration(per_step * double(total_steps_ - step_)).c_str());
      std::fflush(stdout);
    }
    if (stop_signal_) {  // every rank sees the same request after the same step
      if (tty) std::printf("\n");
      checkpoint();
      throw TrainingInterrupted(stop_signal_, step_, out_dir_ + "/checkpoint.safetensors");
    }
    if (config_.checkpoint_every > 0 && step_ % config_.checkpoint_every == 0 && step_ < total_steps_) checkpoint();
  }
  if (tty) std::printf("\n");
}

std::vector<EvalRow> Trainer::run() {
  const auto start = std::chrono::steady_clock::now();
  if (is_lead()) {
    std::printf("training %s: %lld sub-models, %s sampler, %lld per step, %lld steps (%lld epochs of %lld examples)",
                config_.model.c_str(), (long long)model_->space().size(),
                independent_ >= 0 ? "independent" : config_.sampler.c_str(),
                (long long)(independent_ >= 0 ? 1 : config_.submodels_per_step), (long long)total_steps_,
                (long long)config_.epochs, (long long)train_set_.size());
    if (comm_->size() > 1)
      std::printf(", data parallel on %d ranks (%s, %s, %lld examples per rank and step)", comm_->size(),
                  comm_->backend().c_str(), config_.data_parallel.c_str(), (long long)(config_.batch_size / comm_->size()));
    std::printf("\n");
  }
  train_until(total_steps_);
  checkpoint();
  comm_->finish();  // every rank is here; rank 0's evaluation below may take longer than the deadline
  if (!is_lead()) return {};  // rank 0 evaluates and writes the reports
  const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<SubModel> subs = independent_ >= 0 ? std::vector<SubModel>{model_->space().at(independent_)}
                                                 : parse_submodel_list(model_->space(), config_.eval_submodels);
  std::printf("trained in %s; evaluating %zu sub-model(s) on %lld test examples\n", duration(train_s).c_str(),
              subs.size(), (long long)test_set_.size());
  std::fflush(stdout);
  const bool tty = ::isatty(STDOUT_FILENO);
  const auto eval_start = std::chrono::steady_clock::now();
  std::vector<EvalRow> rows = evaluate(*model_, subs, test_set_, train_set_, config_, [&](int64_t done, int64_t all) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - eval_start).count();
    const std::string eta = duration(s / double(done) * double(all - done));
    if (tty) std::printf("\revaluated %lld/%lld sub-models  ETA %s   %s", (long long)done, (long long)all, eta.c_str(),
                         done == all ? "\n" : "");
    else if (done == all || done % std::max<int64_t>(all / 10, 1) == 0)
      std::printf("evaluated %lld/%lld sub-models  ETA %s\n", (long long)done, (long long)all, eta.c_str());
    std::fflush(stdout);
  });
  write_eval_csv(out_dir_ + "/eval.csv", rows);
  write_eval_svg(out_dir_ + "/eval.svg", rows, config_.model + ": accuracy of every sub-model");
  return rows;
}

}  // namespace sn
