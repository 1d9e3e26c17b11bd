// train/lm.cpp — the language-model training loop and its evaluation (see lm.h).
#include "train/lm.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include "autograd/ops.h"
#include "core/failpoint.h"
#include "core/grad_mode.h"
#include "kernels/backend.h"
#include "models/decoding.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/stop_signals.h"
#include "train/text_data.h"
#include "train/trainer.h"

namespace sn {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Windows w0 .. w0+n-1 of the held-out bytes as one batch [n, T].
std::pair<Tensor, Tensor> window_batch(const std::vector<uint8_t>& bytes, int64_t w0, int64_t n, int64_t T) {
  std::vector<int64_t> xs, ys;
  for (int64_t w = w0; w < w0 + n; ++w) {
    auto [x, y] = text_window(bytes, w, T);
    for (int64_t v : to_vector<int64_t>(x)) xs.push_back(v);
    for (int64_t v : to_vector<int64_t>(y)) ys.push_back(v);
  }
  return {from_vector(xs, {n, T}), from_vector(ys, {n, T})};
}

std::string format_threshold(double t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", t);
  return buf;
}

}  // namespace

std::vector<EvalRow> evaluate_language_model(SortedLlama& model, const std::vector<uint8_t>& valid,
                                             const TrainConfig& c, const std::vector<std::vector<double>>& early_exit) {
  NoGradGuard no_grad;
  const int64_t T = c.context, V = model.config().vocab;
  int64_t windows = text_windows(valid, T);
  if (c.test_limit > 0) windows = std::min(windows, c.test_limit);
  SN_CHECK(windows > 0, "eval", "the held-out text has no window of ", T + 1, " bytes");
  const Device device = model.device();
  const SubModelSpace& space = model.space();
  const size_t exits = size_t(space.size()), policies = early_exit.size();
  for (const std::vector<double>& p : early_exit)
    SN_CHECK(p.size() + 1 == exits, "eval", "early exit needs ", exits - 1, " thresholds (one per exit but the last), got ",
             p.size());
  // Per exit, then per early-exit policy: summed loss, correct predictions; and per policy the
  // summed FLOPs of the depths its tokens stopped at.
  std::vector<double> loss(exits + policies, 0.0), flops(policies, 0.0);
  std::vector<int64_t> correct(exits + policies, 0);
  std::vector<int64_t> exit_flops;
  for (int64_t i = 0; i < space.size(); ++i) exit_flops.push_back(model.flops(space.at(i)));
  for (int64_t w0 = 0; w0 < windows; w0 += c.eval_batch_size) {
    const int64_t n = std::min(c.eval_batch_size, windows - w0);
    auto [x, y] = window_batch(valid, w0, n, T);
    std::vector<int64_t> targets = to_vector<int64_t>(y);
    std::vector<Tensor> logits = model.forward_exits(x.to(device));  // one pass gives every exit
    std::vector<std::vector<float>> rows, nll, top;
    for (const Tensor& l : logits) {
      rows.push_back(to_vector<float>(l.contiguous()));
      nll.push_back(to_vector<float>(cross_entropy(l.reshape({-1, V}), y.to(device).reshape({-1}), Reduction::none)));
      top.push_back(top_probabilities(l));
    }
    for (size_t i = 0; i < targets.size(); ++i) {
      auto right = [&](size_t e) {
        const float* row = rows[e].data() + i * size_t(V);
        return int64_t(std::max_element(row, row + V) - row) == targets[i];
      };
      for (size_t e = 0; e < exits; ++e) {
        loss[e] += double(nll[e][i]);
        correct[e] += right(e);
      }
      for (size_t p = 0; p < policies; ++p) {  // the first exit sure enough answers
        size_t e = 0;
        while (e + 1 < exits && double(top[e][i]) < early_exit[p][e]) ++e;
        loss[exits + p] += double(nll[e][i]);
        correct[exits + p] += right(e);
        flops[p] += double(exit_flops[e]);
      }
    }
  }
  std::vector<EvalRow> rows;
  // Half a context (one byte at least: data.context = 1 is a valid recipe) as the latency prompt.
  const std::vector<int64_t> prompt(valid.begin(),
                                    valid.begin() + std::min<int64_t>(std::max<int64_t>(1, T / 2), int64_t(valid.size())));
  const double positions = double(windows * T);
  decode(model, prompt, 8, DecodeOptions{});  // warm-up, so that the first row's latency is not inflated
  // Milliseconds per generated token once the prompt is in: 33 tokens decoded minus 1 (the
  // prompt's pass and its first token), the best of eval.latency_repeats.
  auto per_token_ms = [&](const DecodeOptions& o) {
    double best = std::numeric_limits<double>::infinity();
    for (int64_t rep = 0; rep < std::max<int64_t>(c.latency_repeats, 1); ++rep) {
      DecodeStats one, many;
      decode(model, prompt, 1, o, &one);
      decode(model, prompt, 33, o, &many);
      best = std::min(best, (many.seconds - one.seconds) * 1e3 / double(many.new_tokens - one.new_tokens));
    }
    return std::max(best, 0.0);
  };
  for (size_t i = 0; i < exits + policies; ++i) {
    EvalRow r;
    DecodeOptions o;
    if (i < exits) {
      const SubModel sub = space.at(int64_t(i));
      r.submodel = sub.str();
      r.params = model.parameter_count(sub);
      r.flops = model.flops(sub);
      o.exit = sub.get("depth");
    } else {
      const std::vector<double>& p = early_exit[i - exits];
      r.submodel = "early-exit";
      for (size_t e = 0; e < p.size(); ++e) {
        r.submodel += e ? '/' : ' ';
        r.submodel += format_threshold(p[e]);
      }
      r.params = model.parameter_count(space.at(space.size() - 1));
      r.flops = int64_t(std::llround(flops[i - exits] / positions));
      o.early_exit = p;
    }
    r.loss = loss[i] / positions;
    r.accuracy = double(correct[i]) / positions;
    r.latency_ms = per_token_ms(o);
    rows.push_back(r);
  }
  return rows;
}

std::vector<EvalRow> train_language_model(const TrainConfig& c, const std::string& out, bool resume) {
  SN_CHECK(c.objective == "soft" || c.objective == "sampled", "config",
           "train.objective must be \"soft\" or \"sampled\", got \"", c.objective, "\"");
  std::filesystem::create_directories(out);
  const TextCorpus corpus = load_text(c.data_dir, 0.05, c.context);
  auto model = std::dynamic_pointer_cast<SortedLlama>(make_model({c.model, BnStats::per_submodel, c.seed}));
  SN_CHECK(model != nullptr, "train", "data.dataset = \"text\" needs a language model (fortunes-llama), got '",
           c.model, "'");
  const Device device = Device::parse(c.device);
  check_device(device);
  apply_matmul_precision(c.precision);
  model->to(device);
  Optimizer optimizer(*model, c.optimizer_config());
  const Schedule schedule = c.schedule_config();
  const int64_t B = c.batch_size, T = c.context, tokens_per_step = B * T;
  SN_CHECK(B <= text_windows(corpus.train, T), "train", "data.batch_size ", B, " is more than the ",
           text_windows(corpus.train, T), " windows of ", T + 1, " bytes in the training text");
  int64_t total = c.max_steps > 0 ? c.max_steps : c.epochs * int64_t(corpus.train.size()) / tokens_per_step;
  SN_CHECK(total > 0, "train", "the recipe has no steps");
  const std::string ckpt = out + "/checkpoint.safetensors";
  int64_t step = 0, skipped = 0, skipped_in_a_row = 0, saved = -1;
  if (resume && std::filesystem::exists(ckpt)) {
    const CheckpointState s = load_checkpoint(ckpt, *model, &optimizer);
    step = s.step;
    skipped = s.skipped_steps;
    skipped_in_a_row = s.consecutive_skips;
    saved = step;
  }
  std::printf("training %s on %s: %lld files, %zu bytes (%zu held out), %s objective, %lld steps of %lld tokens\n",
              c.model.c_str(), c.data_dir.c_str(), (long long)corpus.files, corpus.train.size() + corpus.valid.size(),
              corpus.valid.size(), c.objective.c_str(), (long long)total, (long long)tokens_per_step);
  std::fflush(stdout);
  const auto params = model->named_parameters();
  std::vector<Shape> whole;
  for (auto& [name, p] : params) whole.push_back(p->tensor.sizes());
  const SubModelSpace& space = model->space();
  std::ofstream metrics(out + "/metrics.jsonl", step == 0 ? std::ios::trunc : std::ios::app);
  SN_CHECK(metrics.good(), "train", "cannot write '", out, "/metrics.jsonl'");
  auto save = [&](int64_t at) {
    CheckpointState s;
    s.step = at;
    s.skipped_steps = skipped;
    s.consecutive_skips = skipped_in_a_row;
    save_checkpoint(ckpt, *model, optimizer, c, s);
    saved = at;
  };
  StopSignals signals;  // SIGINT/SIGTERM: finish the step, save, stop
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t first = step;
  double loss_sum = 0;
  int64_t loss_count = 0;
  for (; step < total; ++step) {
    Generator gen = Generator(c.seed, 0x7e47).split(uint64_t(step));  // batch `step` is the same on resume
    auto [x, y] = text_batch(corpus.train, B, T, gen);
    x = x.to(device);
    y = y.to(device);
    std::vector<Shape> windows = whole;
    Tensor loss;
    if (c.objective == "soft") {
      loss = soft_loss(*model, x, y);
    } else {  // the full model and one shallower exit, drawn uniformly
      const int64_t shallow = int64_t(gen.below(uint64_t(space.size() - 1)));
      for (int64_t i : {space.size() - 1, shallow}) {
        Tensor ce = cross_entropy(model->forward(x, {space.at(i), i, nullptr}).reshape({-1, model->config().vocab}),
                                  y.reshape({-1}));
        loss = loss.defined() ? loss + ce * 0.5f : ce * 0.5f;
      }
    }
    loss.backward();
    if (failpoint("nan-grad")) params[0].second->tensor.grad().fill_(NAN);  // fault tests
    const double value = loss.item();
    const double norm = optimizer.clip_grad_norm(float(c.clip_grad_norm), windows);
    if (std::isfinite(value) && std::isfinite(norm)) {
      optimizer.step(schedule.at(step, total), windows);
      skipped_in_a_row = 0;
      loss_sum += value;
      ++loss_count;
    } else {
      skip_or_stop_nonfinite(c, std::isfinite(value) ? "gradient" : "loss", detail::concat("step ", step + 1), ckpt,
                             saved, skipped, skipped_in_a_row);
    }
    optimizer.zero_grad(windows);
    if ((step + 1) % c.log_every == 0 || step + 1 == total) {
      const double elapsed = seconds_since(t0), rate = double((step + 1 - first) * tokens_per_step) / elapsed;
      const double mean = loss_count > 0 ? loss_sum / double(loss_count) : std::nan("");
      std::printf("step %lld/%lld  loss %.4f  lr %.4g  %.0f tokens/s\n", (long long)(step + 1), (long long)total, mean,
                  double(schedule.at(step, total)), rate);
      std::fflush(stdout);
      metrics << "{\"step\": " << step + 1 << ", \"loss\": ";
      if (loss_count > 0) metrics << mean;
      else metrics << "null";  // every step of the window was skipped
      metrics << ", \"lr\": " << schedule.at(step, total) << ", \"tokens_per_s\": " << rate
              << ", \"elapsed_s\": " << elapsed << ", \"skipped_steps\": " << skipped << "}\n";
      metrics.flush();
      loss_sum = 0;
      loss_count = 0;
    }
    if (const int signal = stop_requested()) {
      save(step + 1);
      throw TrainingInterrupted(signal, step + 1, ckpt);
    }
    if (c.checkpoint_every > 0 && (step + 1) % c.checkpoint_every == 0 && step + 1 < total) save(step + 1);
  }
  save(std::max(total, step));
  std::vector<EvalRow> rows = evaluate_language_model(*model, corpus.valid, c);
  write_eval_csv(out + "/eval.csv", rows);
  write_eval_svg(out + "/eval.svg", rows, c.model + ": next-byte accuracy of every exit");
  return rows;
}

}  // namespace sn
