// train/cli/main.cpp — the `sortednet` command: train, eval, export, info.
// Bad input (config, data, checkpoint, flag) ends with one line on stderr and exit status 1.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <sstream>

#include "train/trainer.h"

using namespace sn;

namespace {

void print_table(const std::vector<EvalRow>& rows) { std::fputs(format_table(rows).c_str(), stdout); }

int run_train(const std::string& config_path, const std::vector<std::string>& sets, const std::string& out,
              bool resume) {
  TrainConfig config = load_config(config_path, sets);
  Trainer trainer(config, out, resume);
  std::vector<EvalRow> rows = trainer.run();
  print_table(rows);
  std::printf("wrote %s/{checkpoint.safetensors,metrics.jsonl,eval.csv,eval.svg}\n", out.c_str());
  return 0;
}

std::vector<SubModel> pick(const Model& model, const std::vector<std::string>& specs) {
  std::vector<SubModel> subs;
  for (const std::string& spec : specs) {
    std::stringstream ss(spec);
    std::string one;
    while (std::getline(ss, one, ';')) {
      if (one == "all") {
        for (const SubModel& s : model.space().enumerate()) subs.push_back(s);
      } else if (!one.empty()) {
        subs.push_back(model.space().parse(one));
      }
    }
  }
  return subs;
}

int run_eval(const std::string& checkpoint, const std::vector<std::string>& specs, const std::string& out_csv) {
  const std::string file = checkpoint_file(checkpoint);
  TrainConfig config = checkpoint_config(file);
  auto model = make_model({config.model, parse_bn_stats(config.bn_stats), config.seed});
  load_checkpoint(file, *model, nullptr);
  auto [train, test] = load_datasets(config);
  std::vector<SubModel> subs = pick(*model, specs.empty() ? std::vector<std::string>{"all"} : specs);
  std::vector<EvalRow> rows = evaluate(*model, subs, test, train, config);
  print_table(rows);
  const std::string csv = out_csv.empty() ? (file.substr(0, file.rfind('/') + 1) + "eval.csv") : out_csv;
  write_eval_csv(csv, rows);
  std::printf("wrote %s\n", csv.c_str());
  return 0;
}

int run_export(const std::string& checkpoint, const std::string& spec, const std::string& out) {
  const std::string file = checkpoint_file(checkpoint);
  TrainConfig config = checkpoint_config(file);
  auto model = make_model({config.model, parse_bn_stats(config.bn_stats), config.seed});
  load_checkpoint(file, *model, nullptr);
  SubModel sub = model->space().parse(spec);
  export_submodel(out, *model, sub, config);
  std::printf("exported %s (%lld parameters) to %s\n", sub.str().c_str(), (long long)model->parameter_count(sub),
              out.c_str());
  return 0;
}

int run_info(const std::string& config_path, const std::vector<std::string>& sets) {
  TrainConfig config = load_config(config_path, sets);
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
  CLI::App app{"sortednet: train one network holding many nested sub-models (SortedNet), evaluate every "
               "one of them, export any of them."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "sortednet 0.1.0");

  std::string config, out, checkpoint, spec, csv;
  std::vector<std::string> sets, specs;
  bool resume = false;

  CLI::App* train = app.add_subcommand("train", "Train a recipe; writes DIR/{checkpoint.safetensors,metrics.jsonl,eval.csv,eval.svg}");
  train->add_option("--config", config, "Recipe (TOML), e.g. configs/fmnist-resnet-demo.toml")->required()->check(CLI::ExistingFile);
  train->add_option("--set", sets, "Override a recipe key: section.key=value (repeatable)");
  train->add_option("--out", out, "Output directory")->required();
  train->add_flag("--resume", resume, "Continue from DIR/checkpoint.safetensors if present");

  CLI::App* eval = app.add_subcommand("eval", "Evaluate sub-models of a checkpoint; prints and writes the table");
  eval->add_option("--checkpoint", checkpoint, "Checkpoint file or the directory holding it")->required()->check(CLI::ExistingPath);
  eval->add_option("--submodels", specs,
                   "'all' (default) or sub-models such as 'width=4/8,depth.s1=2'; repeat the flag or separate with ';'");
  eval->add_option("--csv", csv, "Where to write the table (default: eval.csv beside the checkpoint)");

  CLI::App* exp = app.add_subcommand("export", "Write one sub-model as a standalone dense checkpoint");
  exp->add_option("--checkpoint", checkpoint, "Checkpoint file or the directory holding it")->required()->check(CLI::ExistingPath);
  exp->add_option("--submodel", spec, "The sub-model, e.g. 'width=4/8,depth.s1=2' (unnamed axes: full)")->required();
  exp->add_option("--out", out, "Output file (.safetensors)")->required();

  CLI::App* info = app.add_subcommand("info", "List a recipe's sub-model space with parameters and FLOPs");
  info->add_option("--config", config, "Recipe (TOML)")->required()->check(CLI::ExistingFile);
  info->add_option("--set", sets, "Override a recipe key: section.key=value (repeatable)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "error: %s (see sortednet --help)\n", e.what());
    return 2;
  }
  try {
    if (*train) return run_train(config, sets, out, resume);
    if (*eval) return run_eval(checkpoint, specs, csv);
    if (*exp) return run_export(checkpoint, spec, out);
    if (*info) return run_info(config, sets);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
