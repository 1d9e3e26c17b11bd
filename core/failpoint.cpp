// core/failpoint.cpp — SN_FAILPOINT parsing and hit counting.
#include "core/failpoint.h"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string>

namespace sn {
namespace {

struct Armed {
  Armed() {
    const char* env = std::getenv("SN_FAILPOINT");
    if (!env) return;
    const char* colon = std::strrchr(env, ':');
    name = colon ? std::string(env, size_t(colon - env)) : std::string(env);
    target = colon ? std::strtol(colon + 1, nullptr, 10) : 1;
  }
  std::string name;
  long target = 0;  // 0: disarmed
  std::atomic<long> hits{0};
};

Armed& armed() {
  static Armed a;
  return a;
}

}  // namespace

bool failpoint(const char* name) {
  Armed& a = armed();
  if (a.target <= 0 || a.name != name) return false;
  return a.hits.fetch_add(1) + 1 == a.target;
}

void crash_point(const char* name) {
  if (failpoint(name)) std::raise(SIGKILL);
}

void arm_failpoint(const char* name, long n) {
  Armed& a = armed();
  a.target = 0;  // disarmed while the name changes
  a.name = name;
  a.hits = 0;
  a.target = n;
}

}  // namespace sn
