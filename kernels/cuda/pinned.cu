// kernels/cuda/pinned.cu — the pinned host allocator: page-locked blocks from which host ->
// device copies run asynchronously. A freed block is handed out again only after every copy
// queued from it has completed (an event per copy), so the loader can drop a batch as soon as its
// copy is queued without the next batch overwriting memory the GPU is still reading.
#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/pinned.h"

namespace sn::cuda {
namespace {

constexpr uint64_t kMaxCachedPinnedBytes = uint64_t(1) << 30;

class PinnedHostAllocator final : public Allocator {
 public:
  // `device`: the GPU this process uses; threads that allocate (the loader's) are bound to it so
  // that they never create a context on GPU 0 of a multi-GPU machine.
  explicit PinnedHostAllocator(int device) : device_(device) {}

  void* allocate(size_t nbytes) override {
    detail::notify_allocation(nbytes);
    bind_thread_to_device();
    const size_t size = round(nbytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.requests++;
      stats_.requested_bytes += nbytes;
      if (void* ptr = take_free_block(size)) {
        stats_.cache_hits++;
        stats_.cached_bytes -= size;
        hand_out(size);
        return ptr;
      }
    }
    // Pinning is slow (page-locking): done outside the lock, so the main thread's copies and
    // frees never wait behind the loader's allocation.
    void* ptr = system_allocate(size);
    if (!ptr) {  // give back what no copy still reads, then try once more
      {
        std::lock_guard<std::mutex> lock(mu_);
        release_idle_blocks(0);
      }
      ptr = system_allocate(size);
    }
    SN_CHECK(ptr != nullptr, "allocate", "out of pinned host memory allocating ", nbytes, " bytes");
    std::lock_guard<std::mutex> lock(mu_);
    blocks_[static_cast<const char*>(ptr)] = Block{size, {}};
    stats_.system_allocs++;
    hand_out(size);
    return ptr;
  }

  // Runs from Storage's destructor: never throws.
  void deallocate(void* ptr, size_t) noexcept override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    const size_t size = blocks_.at(static_cast<const char*>(ptr)).size;
    stats_.current_bytes -= size;
    free_[size].push_back(ptr);
    stats_.cached_bytes += size;
    if (stats_.cached_bytes > kMaxCachedPinnedBytes) release_idle_blocks(kMaxCachedPinnedBytes);
  }

  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    release_idle_blocks(0);
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

  // False when ptr is not ours or no event could be recorded: the caller then waits instead.
  bool record_copy(const void* ptr, cudaStream_t stream) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = blocks_.upper_bound(static_cast<const char*>(ptr));
    if (it == blocks_.begin()) return false;
    --it;
    if (static_cast<const char*>(ptr) >= it->first + it->second.size) return false;
    cudaEvent_t event = take_event();
    if (!event) return false;
    if (cudaEventRecord(event, stream) != cudaSuccess) {
      (void)cudaGetLastError();  // not left for the next launch check to report as its own
      cudaEventDestroy(event);
      return false;
    }
    it->second.pending.push_back(event);
    return true;
  }

 private:
  struct Block {
    size_t size = 0;
    std::vector<cudaEvent_t> pending;  // copies queued from this block, not yet seen complete
  };

  // 4 KiB granules up to 1 MiB, then whole MiBs: a loader repeats two or three sizes.
  static size_t round(size_t n) {
    const size_t granule = n <= (size_t(1) << 20) ? 4096 : (size_t(1) << 20);
    return (std::max<size_t>(n, 1) + granule - 1) / granule * granule;
  }

  void bind_thread_to_device() const {
    thread_local int bound = -1;
    if (bound == device_) return;
    SN_CUDA_CHECK(cudaSetDevice(device_));
    bound = device_;
  }

  static void* system_allocate(size_t size) {
    void* ptr = nullptr;
    if (cudaHostAlloc(&ptr, size, cudaHostAllocPortable) != cudaSuccess) {
      (void)cudaGetLastError();  // not sticky: the caller frees idle blocks and retries
      return nullptr;
    }
    return ptr;
  }

  void hand_out(size_t size) {
    stats_.current_bytes += size;
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
  }

  // True when every copy queued from the block has finished; finished events are recycled. Any
  // error (a failed device, CUDA unloading at exit) counts as "not finished": the block is kept
  // and the error is reported by the next checked call, not from a destructor.
  bool copies_done(Block& block) noexcept {
    auto& pending = block.pending;
    for (size_t i = 0; i < pending.size();) {
      if (cudaEventQuery(pending[i]) != cudaSuccess) {
        (void)cudaGetLastError();  // NotReady is not sticky; a sticky error stays sticky
        ++i;
        continue;
      }
      idle_events_.push_back(pending[i]);
      pending[i] = pending.back();
      pending.pop_back();
    }
    return pending.empty();
  }

  void* take_free_block(size_t size) {
    auto it = free_.find(size);
    if (it == free_.end()) return nullptr;
    auto& list = it->second;
    for (size_t i = 0; i < list.size(); ++i) {
      if (!copies_done(blocks_.at(static_cast<const char*>(list[i])))) continue;
      void* ptr = list[i];
      list.erase(list.begin() + std::ptrdiff_t(i));
      return ptr;
    }
    return nullptr;
  }

  // Unpins free blocks whose copies are done until at most `keep` bytes stay cached.
  void release_idle_blocks(uint64_t keep) noexcept {
    for (auto& [size, list] : free_) {
      for (size_t i = 0; i < list.size() && stats_.cached_bytes > keep;) {
        auto block = blocks_.find(static_cast<const char*>(list[i]));
        if (!copies_done(block->second)) {
          ++i;
          continue;
        }
        cudaFreeHost(list[i]);
        blocks_.erase(block);
        stats_.cached_bytes -= size;
        list[i] = list.back();
        list.pop_back();
      }
    }
  }

  cudaEvent_t take_event() noexcept {
    if (!idle_events_.empty()) {
      cudaEvent_t event = idle_events_.back();
      idle_events_.pop_back();
      return event;
    }
    cudaEvent_t event = nullptr;
    if (cudaEventCreateWithFlags(&event, cudaEventDisableTiming) != cudaSuccess) {
      (void)cudaGetLastError();
      return nullptr;
    }
    return event;
  }

  const int device_;
  mutable std::mutex mu_;
  std::map<const char*, Block> blocks_;  // every block, by start address (for interior pointers)
  std::unordered_map<size_t, std::vector<void*>> free_;
  std::vector<cudaEvent_t> idle_events_;
  AllocatorStats stats_;
};

PinnedHostAllocator* g_pinned = nullptr;

}  // namespace

void register_pinned_host(int device) {
  static PinnedHostAllocator* allocator = [device] {
    auto* a = new PinnedHostAllocator(device);  // lives for the process, like the device allocator
    g_pinned = a;
    register_pinned_host_allocator(a);
    return a;
  }();
  (void)allocator;
}

bool record_pinned_copy(const void* host_ptr, cudaStream_t stream) {
  return g_pinned != nullptr && g_pinned->record_copy(host_ptr, stream);
}

}  // namespace sn::cuda
