// kernels/cuda/runtime.cu — device discovery, the caching device allocator and the backend's
// registration.
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/allocator.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"

namespace sn {
namespace {

// Caches freed blocks by rounded size so the training loop never calls cudaMalloc after its
// first step (cudaMalloc/cudaFree synchronise the device).
class CudaCachingAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    detail::notify_allocation(nbytes);
    size_t size = round(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.requests++;
    stats_.requested_bytes += nbytes;
    auto& blocks = free_[size];
    void* ptr = nullptr;
    if (!blocks.empty()) {
      ptr = blocks.back();
      blocks.pop_back();
      stats_.cache_hits++;
      stats_.cached_bytes -= size;
    } else {
      cudaError_t err = cudaMalloc(&ptr, size);
      if (err == cudaErrorMemoryAllocation) {  // return the cache and retry once
        (void)cudaGetLastError();
        release_all_locked();
        err = cudaMalloc(&ptr, size);
      }
      if (err != cudaSuccess)
        fail("allocate", detail::concat("cannot allocate ", nbytes, " bytes on the GPU: ",
                                        cudaGetErrorString(err)));
      stats_.system_allocs++;
    }
    stats_.current_bytes += size;
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
    return ptr;
  }

  void deallocate(void* ptr, size_t nbytes) override {
    if (!ptr) return;
    size_t size = round(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.current_bytes -= size;
    stats_.cached_bytes += size;
    free_[size].push_back(ptr);
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
    AllocatorStats s;
    s.current_bytes = s.peak_bytes = stats_.current_bytes;
    s.cached_bytes = stats_.cached_bytes;
    stats_ = s;
  }

 private:
  static size_t round(size_t n) {
    if (n <= (size_t(1) << 20)) return (std::max<size_t>(n, 1) + 511) / 512 * 512;
    return (n + (size_t(2) << 20) - 1) / (size_t(2) << 20) * (size_t(2) << 20);
  }
  void release_all_locked() {
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) cudaFree(p);
    free_.clear();
    stats_.cached_bytes = 0;
  }

  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

thread_local cudaStream_t t_stream = nullptr;

}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

bool cuda_available() { return cuda_device_count() > 0; }

cudaStream_t current_stream() { return t_stream; }

Backend& cuda_backend() {
  static CudaBackend* backend = [] {
    register_allocator(DeviceType::CUDA, new CudaCachingAllocator());  // lives for the process
    return new CudaBackend();
  }();
  return *backend;
}

}  // namespace sn
