// Fuzz target: the CIFAR-10 binary-batch reader.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "train/data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    sn::parse_cifar10({std::vector<uint8_t>(data, data + size)}, {"batch"});
  } catch (const sn::Error&) {
  }
  return 0;
}
