// core/error.cpp — error formatting helpers.
#include "core/error.h"

namespace sn {

void fail(const char* op, const std::string& message) {
  throw Error(std::string(op) + ": " + message);
}

std::string shape_str(const std::vector<int64_t>& sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(sizes[i]);
  }
  return s + "]";
}

}  // namespace sn
