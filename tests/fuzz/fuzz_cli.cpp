// Fuzz target: the `sortednet` flag parser. The input is split at NUL bytes into arguments;
// parsing (never running) them must end in success or a CLI11 parse error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "train/cli/app.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args{"sortednet"};
  std::string current;
  for (size_t i = 0; i < size && args.size() < 32; ++i) {
    if (data[i] == 0) {
      args.push_back(current);
      current.clear();
    } else {
      current += char(data[i]);
    }
  }
  if (!current.empty()) args.push_back(current);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  sn::CliArgs parsed;
  auto app = sn::make_cli(parsed);
  try {
    app->parse(int(argv.size()), argv.data());
  } catch (const CLI::Error&) {
  }
  return 0;
}
