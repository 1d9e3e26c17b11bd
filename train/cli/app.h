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
  bool resume = false;
  int64_t count = 64;
  // generate
  std::string prompt;
  int64_t max_new = 200, exit = 0, draft_exit = 2, max_draft = 8;
  bool speculative = false;
  CLI::App *train = nullptr, *eval = nullptr, *exp = nullptr, *predict = nullptr, *info = nullptr, *generate = nullptr;
};

// The parser; parsing fills `args` (which must outlive it).
std::unique_ptr<CLI::App> make_cli(CliArgs& args);

}  // namespace sn
