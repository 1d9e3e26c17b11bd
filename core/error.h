// core/error.h — sn::Error, the one exception type of the library, and SN_CHECK.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sn {

// Every failure the library reports: "op: what is wrong (shapes, what was expected)".
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

[[noreturn]] void fail(const char* op, const std::string& message);

// "[2, 3, 4]" — shapes in messages.
std::string shape_str(const std::vector<int64_t>& sizes);

}  // namespace sn

// SN_CHECK(cond, "op", parts...) throws sn::Error("op: parts...") when cond is false.
#define SN_CHECK(cond, op, ...)                                         \
  do {                                                                   \
    if (!(cond)) ::sn::fail(op, ::sn::detail::concat(__VA_ARGS__));     \
  } while (0)
