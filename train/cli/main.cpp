// train/cli/main.cpp — the `sortednet` command: train, eval, export, predict, info.
// Bad input (config, data, checkpoint) ends with one line on stderr and exit status 1 (a bad flag:
// 2). SIGINT/SIGTERM during training save a checkpoint and exit with 128 + the signal number.
#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/grad_mode.h"
#include "kernels/backend.h"
#include "train/cli/app.h"
#include "train/comm.h"
#include "train/safetensors.h"
#include "models/decoding.h"
#include "train/lm.h"
#include "train/text_data.h"
#include "train/trainer.h"

using namespace sn;

namespace {

void print_table(const std::vector<EvalRow>& rows) { std::fputs(format_table(rows).c_str(), stdout); }

int run_train(const std::string& config_path, const std::vector<std::string>& sets, const std::string& out,
              bool resume) {
  TrainConfig config = load_config(config_path, sets);
  if (!resume) check_fresh_run_dir(out);
  if (config.dataset == "text") {  // a language model (W4)
    std::vector<EvalRow> rows = train_language_model(config, out, resume);
    print_table(rows);
    std::printf("wrote %s/{checkpoint.safetensors,metrics.jsonl,eval.csv,eval.svg}\n", out.c_str());
    return 0;
  }
  Trainer trainer(config, out, resume);
  std::vector<EvalRow> rows = trainer.run();
  if (!trainer.is_lead()) return 0;  // data parallel: rank 0 reports
  print_table(rows);
  std::printf("wrote %s/{checkpoint.safetensors,metrics.jsonl,eval.csv,eval.svg}\n", out.c_str());
  return 0;
}

std::vector<SubModel> pick(const Model& model, const std::vector<std::string>& specs) {
  std::vector<SubModel> subs;
  for (const std::string& spec : specs)
    for (const SubModel& s : parse_submodel_list(model.space(), spec)) subs.push_back(s);
  return subs;
}

int run_eval(const std::string& checkpoint, const std::vector<std::string>& specs, const std::vector<std::string>& sets,
             const std::string& out_csv, const std::vector<std::string>& early_exit) {
  const std::string file = checkpoint_file(checkpoint);
  TrainConfig config = checkpoint_config(file);
  if (!sets.empty()) config = parse_config(config.to_toml(), sets, file + " (stored recipe)");
  const std::string csv = out_csv.empty() ? (file.substr(0, file.rfind('/') + 1) + "eval.csv") : out_csv;
  check_output_file("eval", csv, file);
  auto model = load_model(file, config);
  const Device device = Device::parse(config.device);
  check_device(device);
  apply_matmul_precision(config.precision);
  model->to(device);
  if (config.dataset == "text") {  // a language model: every exit on the held-out bytes
    auto lm = std::dynamic_pointer_cast<SortedLlama>(model);
    SN_CHECK(lm != nullptr, "eval", "data.dataset = \"text\" needs a language model, the checkpoint holds ", config.model);
    SN_CHECK(specs.empty(), "eval", "a language model is evaluated at every exit (leave out --submodels)");
    std::vector<std::vector<double>> policies;
    for (const std::string& p : early_exit) policies.push_back(parse_thresholds(p));
    std::vector<EvalRow> rows =
        evaluate_language_model(*lm, load_text(config.data_dir, 0.05, config.context).valid, config, policies);
    print_table(rows);
    write_eval_csv(csv, rows);
    std::printf("wrote %s\n", csv.c_str());
    return 0;
  }
  SN_CHECK(early_exit.empty(), "eval", "--early-exit applies to language models");
  auto [train, test] = load_datasets(config);
  std::vector<SubModel> subs = pick(*model, specs.empty() ? std::vector<std::string>{"all"} : specs);
  std::vector<EvalRow> rows = evaluate(*model, subs, test, train, config);
  print_table(rows);
  write_eval_csv(csv, rows);
  std::printf("wrote %s\n", csv.c_str());
  return 0;
}

int run_export(const std::string& checkpoint, const std::string& spec, const std::string& out) {
  const std::string file = checkpoint_file(checkpoint);
  check_output_file("export", out, file);
  TrainConfig config = checkpoint_config(file);
  auto model = load_model(file, config);
  SubModel sub = model->space().parse(spec);
  if (parse_bn_stats(config.bn_stats) == BnStats::recalibrate) {
    // The one set of running statistics belongs to no sub-model in particular: compute this one's.
    auto [train, test] = load_datasets(config);
    recalibrate_batch_norms(*model, sub, model->space().index_of(sub), train, config);
  }
  export_submodel(out, *model, sub, config);
  std::printf("exported %s (%lld parameters) to %s\n", sub.str().c_str(), (long long)model->parameter_count(sub),
              out.c_str());
  return 0;
}

// Logits of one sub-model on the first `count` test images, written with those inputs so that
// another framework can reproduce them (tools/torch_interop.py).
int run_predict(const std::string& checkpoint, const std::string& spec, int64_t count, const std::string& out) {
  const std::string file = checkpoint_file(checkpoint);
  check_output_file("predict", out, file);
  TrainConfig config;
  std::shared_ptr<Model> model;
  SubModel sub;
  int64_t index = 0;
  if (is_exported(SafetensorsFile{{}, load_safetensors_metadata(file)})) {
    model = load_exported(file, &config);
    sub = model->space().at(0);
    SN_CHECK(spec.empty() || model->space().parse(spec) == sub, "predict", "'", file,
             "' holds only sub-model ", sub.str());
  } else {
    config = checkpoint_config(file);
    model = load_model(file, config);
    sub = spec.empty() ? model->space().at(model->space().size() - 1) : model->space().parse(spec);
    index = model->space().index_of(sub);
  }
  SN_CHECK(config.dataset != "text", "predict", "'", file, "' holds a language model: use `sortednet generate`");
  if (count > 0) config.test_limit = config.test_limit > 0 ? std::min(config.test_limit, count) : count;
  auto [train, test] = load_datasets(config);
  if (parse_bn_stats(config.bn_stats) == BnStats::recalibrate && model->space().size() > 1)
    recalibrate_batch_norms(*model, sub, index, train, config);
  NoGradGuard no_grad;
  model->eval();
  Tensor logits = model->forward(test.images, {sub, index, nullptr});
  save_safetensors(out, {{"inputs", test.images}, {"labels", test.labels}, {"logits", logits}},
                   {{"model", config.model}, {"submodel", sub.str()}});
  std::printf("wrote the logits of %s on %lld test images to %s\n", sub.str().c_str(), (long long)test.size(),
              out.c_str());
  return 0;
}

// "exit: acceptance, cost" of one exit measured for the draft-exit choice.
std::string fmt_exit(int64_t exit, double acceptance, double cost) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%lld: %.2f, %.2f", (long long)exit, acceptance, cost);
  return buf;
}

// Prints the continuation and the decoding statistics. Early-exit and speculative decoding
// are compared with plain decoding of the full model (same sampling): the speed-up, and for
// greedy decoding whether the outputs agree (speculative decoding must: exit status 1 if not).
int run_generate(const CliArgs& a) {
  const std::string file = checkpoint_file(a.checkpoint);
  TrainConfig config = checkpoint_config(file);
  auto model = std::dynamic_pointer_cast<SortedLlama>(load_model(file, config));
  SN_CHECK(model != nullptr, "generate", file, " holds a ", config.model, ", not a language model");
  const Device device = Device::parse(a.device.empty() ? config.device : a.device);
  check_device(device);
  apply_matmul_precision(config.precision);
  model->to(device);
  std::vector<int64_t> prompt(a.prompt.begin(), a.prompt.end());
  for (int64_t& t : prompt) t &= 0xff;  // bytes
  // Past the trained context RoPE goes on, but those positions were never trained: said last,
  // once the output is out (and only if nothing was refused).
  auto finish = [&](int status) {
    if (int64_t(prompt.size()) + a.max_new > config.context)
      std::fprintf(stderr,
                   "warning: %zu prompt bytes + %lld new ones pass the %lld-byte context the model was trained on\n",
                   prompt.size(), (long long)a.max_new, (long long)config.context);
    return status;
  };
  const int64_t L = model->config().layers;
  const Sampling sampling{a.temperature, a.seed};
  const bool greedy = sampling.greedy();
  auto text = [](const std::vector<int64_t>& tokens) { return std::string(tokens.begin(), tokens.end()); };
  auto rate = [](const DecodeStats& s) { return double(s.new_tokens) / s.seconds; };
  SN_CHECK(!a.speculative || a.early_exit.empty(), "generate", "choose --speculative or --early-exit, not both");
  SN_CHECK((a.early_exit.empty() && !a.speculative) || a.exit == 0 || a.exit == L, "generate",
           "early exit and speculative decoding decode the full model (leave out --exit)");
  DecodeOptions plain;
  plain.exit = a.exit > 0 ? a.exit : L;
  plain.sampling = sampling;
  // Every compared decode runs once to warm up (filling the allocator's cache with the sizes that run
  // needs: its caches grow token by token), then three times; the fastest run is reported, so
  // that the comparison is of warm runs and as little as possible of the machine's other load.
  auto best_of_three = [](auto&& run) {
    DecodeStats best, last;
    run(last);
    std::vector<int64_t> out;
    for (int rep = 0; rep < 3; ++rep) {
      out = run(last);
      if (rep == 0 || last.seconds < best.seconds) best = last;
    }
    return std::pair{out, best};
  };
  if (a.early_exit.empty() && !a.speculative) {  // plain decoding: one run, each byte printed as it comes
    DecodeStats st;
    DecodeOptions streamed = plain;
    streamed.on_token = [](int64_t token) {
      std::fputc(int(token), stdout);
      std::fflush(stdout);
    };
    std::fputs(a.prompt.c_str(), stdout);
    decode(*model, prompt, a.max_new, streamed, &st);
    std::fputc('\n', stdout);
    std::fprintf(stderr, "exit %lld%s: %lld bytes in %.3f s, %.1f bytes/s\n", (long long)plain.exit,
                 greedy ? ", greedy" : ", sampled", (long long)st.new_tokens, st.seconds, rate(st));
    return finish(0);
  }
  const auto [reference, full] =
      best_of_three([&](DecodeStats& st) { return decode(*model, prompt, a.max_new, plain, &st); });
  auto same = [&](const std::vector<int64_t>& out) {
    if (!greedy) return std::string("(sampled: the same distribution, other draws)");
    if (out == reference) return std::string("yes");
    size_t i = 0;
    while (i < out.size() && out[i] == reference[i]) ++i;
    return "no, from byte " + std::to_string(i);
  };
  if (!a.early_exit.empty()) {
    DecodeOptions o = plain;
    o.early_exit = parse_thresholds(a.early_exit);
    const auto [out, st] = best_of_three([&](DecodeStats& s) { return decode(*model, prompt, a.max_new, o, &s); });
    std::printf("%s%s\n", a.prompt.c_str(), text(out).c_str());
    const std::vector<int64_t>& exits = model->config().exits;
    double depth = 0;
    std::string spread;
    for (size_t e = 0; e < exits.size(); ++e) {
      depth += double(exits[e] * st.exit_tokens[e]) / double(st.new_tokens);
      spread += (e ? ", " : "") + std::to_string(st.exit_tokens[e]) + " at " + std::to_string(exits[e]);
    }
    std::fprintf(stderr,
                 "early exit %s: %lld bytes in %.3f s, %.1f bytes/s; stopped %s (mean depth %.2f of %lld); full "
                 "model %.3f s: speed-up %.2fx; same output as the full model: %s\n",
                 a.early_exit.c_str(), (long long)st.new_tokens, st.seconds, rate(st), spread.c_str(), depth,
                 (long long)L, full.seconds, full.seconds / st.seconds, same(out).c_str());
    return finish(0);
  }
  SpeculativeOptions o;
  if (a.draft_exit != "auto") {  // one of the trained exits below the full depth (the head learnt only those)
    const std::vector<int64_t>& exits = model->config().exits;
    std::string choices;
    for (int64_t e : exits)
      if (e < L) choices += (choices.empty() ? "" : ", ") + std::to_string(e);
    char* stop = nullptr;
    o.draft_exit = std::strtoll(a.draft_exit.c_str(), &stop, 10);
    SN_CHECK(!a.draft_exit.empty() && *stop == '\0' && o.draft_exit < L &&
                 std::find(exits.begin(), exits.end(), o.draft_exit) != exits.end(),
             "generate", "--draft-exit must be 'auto' or one of the exits ", choices, ", got '", a.draft_exit, "'");
  } else {
    o.draft_exit = 0;
  }
  o.max_draft = a.max_draft;
  o.sampling = sampling;
  const auto [out, st] =
      best_of_three([&](DecodeStats& s) { return speculative_decode(*model, prompt, a.max_new, o, &s); });
  std::printf("%s%s\n", a.prompt.c_str(), text(out).c_str());
  if (!st.exit_agreement.empty()) {
    std::string measured;
    for (size_t e = 0; e + 1 < st.exit_agreement.size(); ++e)
      measured += (e ? "; " : "") + fmt_exit(model->config().exits[e], st.exit_agreement[e], st.exit_cost[e]);
    std::fprintf(stderr, "draft exit chosen on the prompt: %lld (acceptance, cost per exit: %s)\n",
                 (long long)st.draft_exit, measured.c_str());
  }
  const double cost_ratio = st.seconds_per_draft() / (full.seconds / double(full.new_tokens));
  std::fprintf(stderr,
               "speculative (draft exit %lld of %lld%s): %lld bytes in %.3f s, %.1f bytes/s; acceptance %.3f "
               "(%lld of %lld drafted), %.2f bytes per verify step, draft/target cost %.2f; full model %.3f s, "
               "%.1f bytes/s: speed-up %.2fx; same output as the full model: %s\n",
               (long long)st.draft_exit, (long long)L, greedy ? ", greedy" : ", sampled", (long long)st.new_tokens,
               st.seconds, rate(st), st.acceptance(), (long long)st.accepted, (long long)st.drafted,
               st.tokens_per_verify(), cost_ratio, full.seconds, rate(full), full.seconds / st.seconds,
               same(out).c_str());
  return finish(greedy && out != reference ? 1 : 0);
}

int run_info(const std::string& config_path, const std::vector<std::string>& sets) {
  TrainConfig config = load_config(config_path, sets);
  SkipRandomInit skip;  // only the shapes are read
  auto model = make_model({config.model, parse_bn_stats(config.bn_stats), config.seed});
  const SubModelSpace& space = model->space();
  std::printf("model %s: %lld sub-models over axes", config.model.c_str(), (long long)space.size());
  for (const Axis& a : space.axes()) {
    std::printf(" %s {", a.name.c_str());
    for (size_t i = 0; i < a.sizes.size(); ++i) std::printf("%s%s", i ? "," : "", a.format(a.sizes[i]).c_str());
    std::printf("}");
  }
  std::printf("\n%-44s %10s %12s\n", "submodel", "params", "MFLOPs");
  for (const SubModel& s : space.enumerate())
    std::printf("%-44s %10lld %12.2f\n", s.str().c_str(), (long long)model->parameter_count(s), double(model->flops(s)) * 1e-6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CliArgs a;
  std::unique_ptr<CLI::App> app_ptr = make_cli(a);
  CLI::App& app = *app_ptr;

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    if (app.get_subcommands().empty() && argc > 1 && argv[1][0] != '-') {
      std::fprintf(stderr, "error: unknown subcommand '%s' (train, eval, export, predict, generate or info)\n",
                   argv[1]);
      return 2;
    }
    std::fprintf(stderr, "error: %s (see sortednet --help)\n", e.what());
    return 2;
  }
  if (!a.device.empty()) a.sets.push_back("train.device=" + a.device);  // last: the flag wins
  try {
    if (*a.train) return run_train(a.config, a.sets, a.out, a.resume);
    if (*a.eval) return run_eval(a.checkpoint, a.specs, a.sets, a.csv, a.early_exit_policies);
    if (*a.exp) return run_export(a.checkpoint, a.spec, a.out);
    if (*a.predict) return run_predict(a.checkpoint, a.spec, a.count, a.out);
    if (*a.info) return run_info(a.config, a.sets);
    if (*a.generate) return run_generate(a);
  } catch (const TrainingInterrupted& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 128 + e.signal();
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    end_job_after_error(1);  // a rank of a data-parallel job: the others must not wait for it
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    end_job_after_error(1);
    return 1;
  }
  return 0;
}
