// Fuzz target: TOML recipes, and `--set key=value` overrides (the input's last line).
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "train/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const size_t last = text.rfind('\n');
  try {
    sn::parse_config(text, {}, "fuzz");
  } catch (const sn::Error&) {
  }
  if (last != std::string::npos) {
    try {
      sn::parse_config(text.substr(0, last), {text.substr(last + 1)}, "fuzz");
    } catch (const sn::Error&) {
    }
  }
  return 0;
}
