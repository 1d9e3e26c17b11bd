// core/rng.cpp — Philox-4x32-10 (Salmon et al., SC'11) and the Generator built on it.
#include "core/rng.h"

#include <cmath>

namespace sn {

std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> c, std::array<uint32_t, 2> k) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += kWeyl0;
      k[1] += kWeyl1;
    }
    uint64_t p0 = uint64_t(kMul0) * c[0];
    uint64_t p1 = uint64_t(kMul1) * c[2];
    c = {uint32_t(p1 >> 32) ^ c[1] ^ k[0], uint32_t(p1), uint32_t(p0 >> 32) ^ c[3] ^ k[1],
         uint32_t(p0)};
  }
  return c;
}

namespace {
uint64_t mix64(uint64_t x) {  // splitmix64 finaliser: spreads ids into unrelated streams
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
}  // namespace

Generator Generator::split(uint64_t id) const {
  return Generator(state_.seed, mix64(state_.stream ^ mix64(id + 1)));
}

std::array<uint32_t, 4> Generator::block(uint64_t index) const {
  return philox4x32({uint32_t(index), uint32_t(index >> 32), uint32_t(state_.stream),
                     uint32_t(state_.stream >> 32)},
                    {uint32_t(state_.seed), uint32_t(state_.seed >> 32)});
}

GeneratorState Generator::state() const {
  GeneratorState s = state_;
  s.used = buffered_ > 0 ? uint32_t(4 - buffered_) : 0;
  return s;
}

void Generator::set_state(const GeneratorState& s) {
  state_ = s;
  state_.used = 0;
  buffered_ = 0;
  if (s.used > 0 && s.used < 4 && s.counter > 0) {
    buffer_ = block(s.counter - 1);
    buffered_ = int(4 - s.used);
  }
}

uint64_t Generator::reserve_blocks(uint64_t n) {
  buffered_ = 0;
  uint64_t first = state_.counter;
  state_.counter += n;
  return first;
}

uint32_t Generator::next_u32() {
  if (buffered_ == 0) {
    buffer_ = block(state_.counter++);
    buffered_ = 4;
  }
  return buffer_[4 - buffered_--];
}

uint64_t Generator::next_u64() {
  uint64_t hi = next_u32();
  return (hi << 32) | next_u32();
}

float Generator::uniform() { return u32_to_unit(next_u32()); }

float Generator::normal() {
  float u1 = uniform(), u2 = uniform();
  if (u1 < 1e-12f) u1 = 1e-12f;
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.28318530717958647692f * u2);
}

uint64_t Generator::below(uint64_t bound) {
  if (bound <= 1) return 0;
  uint64_t limit = UINT64_MAX - UINT64_MAX % bound;  // reject the biased tail
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % bound;
}

}  // namespace sn
