// Fuzz target: sub-model text ("width=4/8,depth.s1=2") and sub-model lists ("all;width=1/8") in
// the spaces of W1 (plain sizes) and W2 (fractions and depths).
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "train/evaluate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const sn::SubModelSpace w1({sn::Axis{"width", {128, 256, 384, 512, 640, 768, 896, 1024}}});
  static const sn::SubModelSpace w2({sn::Axis{"width", {1, 2, 3, 4, 5, 6, 7, 8}, 8}, sn::Axis{"depth.s1", {1, 2, 3}},
                                     sn::Axis{"depth.s2", {1, 2, 3}}, sn::Axis{"depth.s3", {1, 2, 3}}});
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const sn::SubModelSpace* space : {&w1, &w2}) {
    try {
      sn::SubModel s = space->parse(text);
      if (space->parse(s.str()) != s) __builtin_trap();  // the text form must round-trip
    } catch (const sn::Error&) {
    }
    try {
      sn::parse_submodel_list(*space, text);
    } catch (const sn::Error&) {
    }
  }
  return 0;
}
