// core/allocator.cpp — the CPU caching allocator and the per-device allocator registry.
#include "core/allocator.h"

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.h"

namespace sn {
namespace {

constexpr size_t kAlignment = 64;
constexpr uint64_t kMaxCachedBytes = uint64_t(2) << 30;  // beyond this, frees go to the system

// Rounds to 64 bytes below 4 KiB, then to a quarter of the next power of two, so that the
// few sizes a training loop repeats land in a few buckets without wasting more than 25%.
size_t round_size(size_t n) {
  if (n <= 4096) return (n + kAlignment - 1) / kAlignment * kAlignment;
  size_t p = 1;
  while (p < n) p <<= 1;
  size_t quarter = p / 8;
  return (n + quarter - 1) / quarter * quarter;
}

class CpuCachingAllocator final : public Allocator {
 public:
  ~CpuCachingAllocator() override { empty_cache(); }

  void* allocate(size_t nbytes) override {
    detail::notify_allocation(nbytes);
    size_t size = round_size(nbytes == 0 ? 1 : nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.requests++;
    stats_.requested_bytes += nbytes;
    void* ptr = nullptr;
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
      stats_.cache_hits++;
      stats_.cached_bytes -= size;
    } else {
      ptr = std::aligned_alloc(kAlignment, size);
      if (!ptr) {  // give the cache back and try once more before failing
        release_all_locked();
        ptr = std::aligned_alloc(kAlignment, size);
      }
      if (!ptr) fail("allocate", detail::concat("out of host memory allocating ", nbytes, " bytes"));
      stats_.system_allocs++;
    }
    stats_.current_bytes += size;
    if (stats_.current_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.current_bytes;
    return ptr;
  }

  void deallocate(void* ptr, size_t nbytes) override {
    if (!ptr) return;
    size_t size = round_size(nbytes == 0 ? 1 : nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.current_bytes -= size;
    if (stats_.cached_bytes + size > kMaxCachedBytes) {
      std::free(ptr);
      return;
    }
    free_[size].push_back(ptr);
    stats_.cached_bytes += size;
  }

  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    release_all_locked();
  }

  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void reset_stats() override {
    std::lock_guard<std::mutex> lock(mu_);
    AllocatorStats fresh;
    fresh.current_bytes = fresh.peak_bytes = stats_.current_bytes;
    fresh.cached_bytes = stats_.cached_bytes;
    stats_ = fresh;
  }

 private:
  void release_all_locked() {
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    stats_.cached_bytes = 0;
  }

  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

Allocator* g_allocators[kDeviceTypes] = {nullptr, nullptr};
thread_local std::function<void(size_t)> t_observer;

}  // namespace

Allocator& allocator_for(Device device) {
  if (device.is_cpu()) {
    static CpuCachingAllocator* cpu = new CpuCachingAllocator();  // lives for the process
    return *cpu;
  }
  Allocator* a = g_allocators[int(device.type)];
  SN_CHECK(a != nullptr, "allocator_for", "no allocator for device ", device.str(),
           " (was sortednet built with this backend?)");
  return *a;
}

void register_allocator(DeviceType type, Allocator* allocator) { g_allocators[int(type)] = allocator; }

AllocationObserver::AllocationObserver(std::function<void(size_t)> observer)
    : previous_(std::move(t_observer)) {
  t_observer = std::move(observer);
}

AllocationObserver::~AllocationObserver() { t_observer = std::move(previous_); }

void detail::notify_allocation(size_t nbytes) {
  if (t_observer) t_observer(nbytes);
}

}  // namespace sn
