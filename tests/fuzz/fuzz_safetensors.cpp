// Fuzz target: the safetensors reader (header length, JSON, dtypes, shapes, offsets, overlaps,
// checksums) on arbitrary bytes. Bad input must end in sn::Error, never a crash or a huge
// allocation.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "train/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    sn::parse_safetensors(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const sn::Error&) {
  }
  return 0;
}
