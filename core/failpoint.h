// core/failpoint.h — named fault-injection points for crash and fault tests.
//
// With SN_FAILPOINT="name:n" in the environment, the n-th call (1-based) of failpoint("name")
// returns true; every other call returns false. Without it, a failpoint costs one branch.
// Tests use it to kill training at exact moments (mid-accumulation, mid-checkpoint-write) or to
// inject a non-finite gradient.
#pragma once

namespace sn {

bool failpoint(const char* name);
// Where failpoint(name) fires, the process kills itself with SIGKILL: a crash at that spot.
void crash_point(const char* name);
// Arms `name` to fire at its n-th call from now, as SN_FAILPOINT="name:n" would (unit tests);
// n = 0 disarms every failpoint.
void arm_failpoint(const char* name, long n);

}  // namespace sn
