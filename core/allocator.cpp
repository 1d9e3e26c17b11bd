// core/allocator.cpp — the CPU caching allocator and the per-device allocator registry.
#include "core/allocator.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>

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

class CpuCachingAllocator final : public CachingAllocator {
 public:
  CpuCachingAllocator() : CachingAllocator("host", kMaxCachedBytes) {}
  ~CpuCachingAllocator() override { empty_cache(); }

 protected:
  size_t round(size_t nbytes) const override { return round_size(nbytes == 0 ? 1 : nbytes); }
  void* system_allocate(size_t size) override { return std::aligned_alloc(kAlignment, size); }
  void system_free(void* ptr) override { std::free(ptr); }
};

Allocator* g_allocators[kDeviceTypes] = {nullptr, nullptr};
std::atomic<Allocator*> g_pinned_host{nullptr};
thread_local std::function<void(size_t)> t_observer;

}  // namespace

void* CachingAllocator::allocate(size_t nbytes) {
  detail::notify_allocation(nbytes);
  const size_t size = round(nbytes);
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
    ptr = system_allocate(size);
    if (!ptr) {  // give the cache back and try once more before failing
      release_all_locked();
      ptr = system_allocate(size);
    }
    if (!ptr) fail("allocate", detail::concat("out of ", memory_name_, " memory allocating ", nbytes, " bytes"));
    stats_.system_allocs++;
  }
  stats_.current_bytes += size;
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, size_t nbytes) {
  if (!ptr) return;
  const size_t size = round(nbytes);
  std::lock_guard<std::mutex> lock(mu_);
  stats_.current_bytes -= size;
  if (stats_.cached_bytes + size > max_cached_bytes_) {
    system_free(ptr);
    return;
  }
  free_[size].push_back(ptr);
  stats_.cached_bytes += size;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  release_all_locked();
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void CachingAllocator::reset_stats() {
  std::lock_guard<std::mutex> lock(mu_);
  AllocatorStats fresh;
  fresh.current_bytes = fresh.peak_bytes = stats_.current_bytes;
  fresh.cached_bytes = stats_.cached_bytes;
  stats_ = fresh;
}

void CachingAllocator::release_all_locked() {
  for (auto& [size, blocks] : free_)
    for (void* p : blocks) system_free(p);
  free_.clear();
  stats_.cached_bytes = 0;
}

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

Allocator* pinned_host_allocator() { return g_pinned_host.load(std::memory_order_acquire); }
void register_pinned_host_allocator(Allocator* allocator) { g_pinned_host.store(allocator, std::memory_order_release); }

AllocationObserver::AllocationObserver(std::function<void(size_t)> observer)
    : previous_(std::move(t_observer)) {
  t_observer = std::move(observer);
}

AllocationObserver::~AllocationObserver() { t_observer = std::move(previous_); }

void detail::notify_allocation(size_t nbytes) {
  if (t_observer) t_observer(nbytes);
}

}  // namespace sn
