// core/allocator.h — device allocators (CPU: a caching allocator) and allocation accounting.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/device.h"

namespace sn {

// Counters of one allocator since start (or since reset_stats).
struct AllocatorStats {
  uint64_t requests = 0;         // allocate() calls
  uint64_t requested_bytes = 0;  // bytes asked for
  uint64_t cache_hits = 0;       // served from the cache
  uint64_t system_allocs = 0;    // served by the system
  uint64_t current_bytes = 0;    // live, handed out
  uint64_t peak_bytes = 0;
  uint64_t cached_bytes = 0;     // held in free lists
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns memory for nbytes (aligned to 64 bytes), or throws sn::Error naming the size.
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  // Returns cached blocks to the system.
  virtual void empty_cache() {}
  virtual AllocatorStats stats() const = 0;
  virtual void reset_stats() = 0;
};

// Keeps freed blocks by rounded size and hands them out again, so a training loop stops calling
// the system allocator after its first step. A device supplies the system calls and the rounding.
class CachingAllocator : public Allocator {
 public:
  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;
  void empty_cache() override;
  AllocatorStats stats() const override;
  void reset_stats() override;

 protected:
  CachingAllocator(const char* memory_name, uint64_t max_cached_bytes)
      : memory_name_(memory_name), max_cached_bytes_(max_cached_bytes) {}
  virtual size_t round(size_t nbytes) const = 0;
  virtual void* system_allocate(size_t size) = 0;  // nullptr when the memory is exhausted
  virtual void system_free(void* ptr) = 0;

 private:
  void release_all_locked();
  const char* memory_name_;
  uint64_t max_cached_bytes_;
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

// The allocator serving a device; a backend registers its own (CUDA does).
Allocator& allocator_for(Device device);
void register_allocator(DeviceType type, Allocator* allocator);

// Page-locked host memory, from which an accelerator copies to itself asynchronously (the data
// loader stages batches there). An accelerator backend registers it (CUDA does); null without one.
Allocator* pinned_host_allocator();
void register_pinned_host_allocator(Allocator* allocator);

// While alive, calls `observer(nbytes)` on every allocation request on this thread
// (tests use it to prove that a computation allocates no parameter-sized buffer).
class AllocationObserver {
 public:
  explicit AllocationObserver(std::function<void(size_t)> observer);
  ~AllocationObserver();
  AllocationObserver(const AllocationObserver&) = delete;
  AllocationObserver& operator=(const AllocationObserver&) = delete;

 private:
  std::function<void(size_t)> previous_;
};

namespace detail {
void notify_allocation(size_t nbytes);
}

}  // namespace sn
