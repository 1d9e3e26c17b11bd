// train/cli/app.h — the command line of `sortednet`: subcommands, flags and help texts, apart
// from what they run (so that the flag parser can be tested and fuzzed on its own).
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

namespace sn {

struct CliArgs {
  std::string config, out, checkpoint, spec, csv, device;
  std::vector<std::string> sets, specs;
  std::vector<std::string> early_exit_policies;  // eval of a language model
  bool resume = false;
  int64_t count = 64;
  // generate
  std::string prompt;
  std::string early_exit, draft_exit = "auto";
  int64_t max_new = 200, exit = 0, max_draft = 8;
  double temperature = 0;
  uint64_t seed = 0;
  bool speculative = false;
  CLI::App *train = nullptr, *eval = nullptr, *exp = nullptr, *predict = nullptr, *info = nullptr, *generate = nullptr;
};

// The parser; parsing fills `args` (which must outlive it).
std::unique_ptr<CLI::App> make_cli(CliArgs& args);

}  // namespace sn
