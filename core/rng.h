// core/rng.h — a counter-based generator (Philox-4x32-10): reproducible, splittable streams.
//
// Value i of a stream depends only on (seed, stream, i), so kernels can draw in parallel in any
// order and a generator's whole state is three integers (saved in checkpoints).
#pragma once

#include <array>
#include <cstdint>

namespace sn {

// One Philox-4x32-10 block: 4 random words for a 128-bit counter under a 64-bit key.
std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

struct GeneratorState {
  uint64_t seed = 0;
  uint64_t stream = 0;
  uint64_t counter = 0;  // next unused block
  uint32_t used = 0;     // words already read from block counter-1 (0..3): exact resume
};

class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t stream = 0) : state_{seed, stream, 0} {}
  explicit Generator(const GeneratorState& state) { set_state(state); }

  // An independent stream derived from this one's seed and stream (does not advance this one).
  Generator split(uint64_t id) const;

  uint32_t next_u32();
  uint64_t next_u64();
  float uniform();                 // in [0, 1)
  float normal();                  // standard normal (Box-Muller)
  uint64_t below(uint64_t bound);  // uniform integer in [0, bound), unbiased

  // Reserves n blocks for a parallel kernel and returns the first; the kernel computes block
  // (first + j) with block(). The generator moves past them.
  uint64_t reserve_blocks(uint64_t n);
  std::array<uint32_t, 4> block(uint64_t index) const;

  GeneratorState state() const;
  void set_state(const GeneratorState& s);

 private:
  GeneratorState state_;
  std::array<uint32_t, 4> buffer_{};
  int buffered_ = 0;  // unread words left in buffer_
};

// Maps 32 random bits to a float in [0, 1) with 24 bits of precision.
inline float u32_to_unit(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }

}  // namespace sn
