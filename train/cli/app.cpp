// train/cli/app.cpp — the flags of every subcommand (and their --help texts).
#include "train/cli/app.h"

#include <charconv>
#include <cstdint>
#include <limits>

#include "train/config.h"

namespace sn {
namespace {

// An integer flag in [lo, hi], with a plain message (CLI11's own range check prints the double
// limits of its type, 300 digits long).
CLI::Validator integer_in(int64_t lo, int64_t hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        int64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec == std::errc() && end == text.data() + text.size() && v >= lo && v <= hi) return "";
        return "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + text + "'";
      },
      "INT");
}

// A seed: any integer in [0, 2^64).
const CLI::Validator kSeed(
    [](std::string& text) -> std::string {
      uint64_t v = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec == std::errc() && end == text.data() + text.size()) return "";
      return "must be an integer in [0, 2^64), got '" + text + "'";
    },
    "UINT");

constexpr int64_t kIntMax = std::numeric_limits<int32_t>::max();

}  // namespace

std::unique_ptr<CLI::App> make_cli(CliArgs& a) {
  auto app = std::make_unique<CLI::App>(
      "sortednet: train one network holding many nested sub-models (SortedNet), evaluate every one of them, "
      "export any of them.");
  app->require_subcommand(1);
  app->set_version_flag("--version", "sortednet 0.1.0");
  app->footer("\nExamples:\n"
              "  sortednet info --config configs/fmnist-resnet.toml\n"
              "  sortednet train --config configs/fmnist-resnet-demo.toml --out runs/demo\n"
              "  sortednet train --config configs/fmnist-mlp.toml --set train.max_steps=200 --set optimizer.lr=0.05 --out runs/mlp\n"
              "  sortednet eval --checkpoint runs/demo --submodels 'width=4/8;width=8/8'\n"
              "  sortednet export --checkpoint runs/demo --submodel width=4/8,depth.s1=2 --out w4.safetensors\n"
              "Bad input ends with one line on stderr: exit status 2 for flags, 1 for everything else.");
  const std::string recipe_keys = "\nRecipe keys (TOML sections; --set section.key=value), with their defaults:\n\n" +
                                  TrainConfig{}.to_toml();

  a.train = app->add_subcommand("train", "Train a recipe; writes DIR/{checkpoint.safetensors,metrics.jsonl,eval.csv,eval.svg}");
  a.train->add_option("--config", a.config, "Recipe (TOML), e.g. configs/fmnist-resnet-demo.toml")->required()->check(CLI::ExistingFile);
  a.train->add_option("--set", a.sets, "Override a recipe key: section.key=value (repeatable)");
  a.train->add_option("--out", a.out, "Output directory")->required();
  a.train->add_flag("--resume", a.resume,
                    "Continue from DIR/checkpoint.safetensors if present (without it, a DIR that holds a run is "
                    "refused)");
  a.train->add_option("--device", a.device, "cpu, cuda or cuda:N (same as --set train.device=...)");
  a.train->footer(recipe_keys);

  a.eval = app->add_subcommand("eval", "Evaluate sub-models of a checkpoint; prints and writes the table");
  a.eval->add_option("--checkpoint", a.checkpoint, "Checkpoint file or the directory holding it")->required()->check(CLI::ExistingPath);
  a.eval->add_option("--submodels", a.specs,
                   "'all' (default) or sub-models such as 'width=4/8,depth.s1=2'; repeat the flag or separate with ';'");
  a.eval->add_option("--device", a.device, "cpu, cuda or cuda:N (default: the recipe's train.device)");
  a.eval->add_option("--csv", a.csv, "Where to write the table (default: eval.csv beside the checkpoint)");
  a.eval->add_option("--set", a.sets,
                     "Override a key of the stored recipe for this evaluation, e.g. eval.recalibration_batches=50 or "
                     "data.test_limit=0 (repeatable)");
  a.eval->add_option("--early-exit", a.early_exit_policies,
                     "Language model: also evaluate confidence-based early exit with these thresholds, one per exit "
                     "but the last, e.g. 0.9,0.8,0.7 (repeatable)");

  a.exp = app->add_subcommand("export", "Write one sub-model as a standalone dense checkpoint");
  a.exp->add_option("--checkpoint", a.checkpoint, "Checkpoint file or the directory holding it")->required()->check(CLI::ExistingPath);
  a.exp->add_option("--submodel", a.spec, "The sub-model, e.g. 'width=4/8,depth.s1=2' (unnamed axes: full)")->required();
  a.exp->add_option("--out", a.out, "Output file (.safetensors)")->required();

  a.predict = app->add_subcommand(
      "predict", "Write one sub-model's logits on the first test images, computed on the CPU (with the images)");
  a.predict->add_option("--checkpoint", a.checkpoint, "Training checkpoint (file or directory) or an exported sub-model")
      ->required()->check(CLI::ExistingPath);
  a.predict->add_option("--submodel", a.spec, "The sub-model (default: the largest; an exported file holds one)");
  a.predict->add_option("--count", a.count, "How many test images (default 64)")->check(integer_in(1, kIntMax));
  a.predict->add_option("--out", a.out, "Output file (.safetensors with tensors inputs, labels, logits)")->required();

  a.generate = app->add_subcommand("generate", "Continue a prompt with a trained language model (KV cache)");
  a.generate->add_option("--checkpoint", a.checkpoint, "Checkpoint file or the directory holding it")
      ->required()->check(CLI::ExistingPath);
  a.generate->add_option("--prompt", a.prompt, "The text to continue")->required();
  a.generate->add_option("--max-new", a.max_new, "Bytes to generate (default 200, at most 1000000)")
      ->check(integer_in(1, 1000000));
  a.generate->add_option("--exit", a.exit, "Decode at this depth exit (default: the full model)")
      ->check(integer_in(1, kIntMax));
  a.generate->add_option("--temperature", a.temperature, "0 (default): greedy; T > 0: sample softmax(logits / T)");
  a.generate->add_option("--seed", a.seed, "Seed of the sampler (default 0)")->check(kSeed);
  a.generate->add_option("--early-exit", a.early_exit,
                         "Confidence-based early exit: thresholds on the top probability, one per exit but the last, "
                         "e.g. 0.9,0.8,0.7");
  CLI::Option* speculative = a.generate->add_flag("--speculative", a.speculative,
                       "Self-speculative decoding: a shallow exit drafts, the full model verifies (greedy: the same "
                       "output; sampled: the same distribution)");
  a.generate->add_option("--draft-exit", a.draft_exit,
                         "The drafting exit, or 'auto' (default): chosen from the acceptance measured on the prompt "
                         "and the measured cost of each exit (timings: when sampling, name the exit for draws that "
                         "repeat from run to run)")
      ->needs(speculative);
  a.generate->add_option("--max-draft", a.max_draft, "Longest draft; the length adapts below it (default 8)")
      ->check(integer_in(1, 1024))
      ->needs(speculative);
  a.generate->add_option("--device", a.device, "cpu, cuda or cuda:N (default: the recipe's train.device)");

  a.info = app->add_subcommand("info", "List a recipe's sub-model space with parameters and FLOPs");
  a.info->add_option("--config", a.config, "Recipe (TOML)")->required()->check(CLI::ExistingFile);
  a.info->add_option("--set", a.sets, "Override a recipe key: section.key=value (repeatable)");
  a.info->footer(recipe_keys);

  return app;
}

}  // namespace sn
