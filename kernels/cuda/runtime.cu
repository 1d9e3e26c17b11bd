// kernels/cuda/runtime.cu — device discovery, the caching device allocator and the backend's
// registration.
#include <algorithm>
#include <cstdint>

#include "core/allocator.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"

namespace sn {
namespace {

// Freed blocks are cached so the training loop never calls cudaMalloc after its first step
// (cudaMalloc and cudaFree synchronise the device).
class CudaCachingAllocator final : public CachingAllocator {
 public:
  CudaCachingAllocator() : CachingAllocator("GPU", UINT64_MAX) {}
  ~CudaCachingAllocator() override { empty_cache(); }

 protected:
  size_t round(size_t n) const override {
    if (n <= (size_t(1) << 20)) return (std::max<size_t>(n, 1) + 511) / 512 * 512;
    return (n + (size_t(2) << 20) - 1) / (size_t(2) << 20) * (size_t(2) << 20);
  }
  void* system_allocate(size_t size) override {
    void* ptr = nullptr;
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // clear it: the caller frees the cache and retries
      return nullptr;
    }
    SN_CHECK(err == cudaSuccess, "allocate", "cudaMalloc of ", size, " bytes failed: ", cudaGetErrorString(err));
    return ptr;
  }
  void system_free(void* ptr) override { cudaFree(ptr); }
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
