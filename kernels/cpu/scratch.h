// kernels/cpu/scratch.h — host scratch memory for kernels, from the caching allocator.
//
// A std::vector of a few hundred KiB is mmap'ed fresh by malloc on every call, so each use
// takes page faults (serially, on the calling thread). Blocks of the caching allocator come back
// warm every training step.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>

#include "core/storage.h"

namespace sn::cpu {

// n floats, uninitialised.
class Scratch {
 public:
  Scratch() = default;
  explicit Scratch(int64_t n)
      : storage_(n > 0 ? std::make_shared<Storage>(size_t(n) * sizeof(float), Device::cpu()) : nullptr) {}
  float* data() const { return storage_ ? static_cast<float*>(storage_->data()) : nullptr; }

 private:
  std::shared_ptr<Storage> storage_;
};

// n floats per thread; each thread zeroes its own slice (inside the parallel region, so the
// zeroing is parallel too).
class ThreadScratch {
 public:
  ThreadScratch(int threads, int64_t n) : n_(n), block_(threads * n) {}
  float* operator[](int t) const { return block_.data() ? block_.data() + t * n_ : nullptr; }
  void zero(int t) const {
    if (block_.data()) std::fill((*this)[t], (*this)[t] + n_, 0.f);
  }

 private:
  int64_t n_;
  Scratch block_;
};

}  // namespace sn::cpu
