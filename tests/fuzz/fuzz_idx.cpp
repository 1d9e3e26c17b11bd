// Fuzz target: the IDX reader. The input is split in two at a position given by its first
// byte pair: an image file (rank 3) and a label file (rank 1).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "train/data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t split = std::min<size_t>(size - 2, size_t(data[0]) << 8 | data[1]);
  std::vector<uint8_t> images(data + 2, data + 2 + split), labels(data + 2 + split, data + size);
  try {
    sn::parse_idx(images, labels, "images", "labels");
  } catch (const sn::Error&) {
  }
  return 0;
}
