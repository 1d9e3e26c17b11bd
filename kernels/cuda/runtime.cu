// kernels/cuda/runtime.cu — device discovery, the caching device allocator and the backend's
// registration.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/allocator.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/pinned.h"

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

CudaStream::CudaStream() { SN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
CudaStream::~CudaStream() { cudaStreamDestroy(stream_); }  // returns at once; queued work still runs
void CudaStream::synchronize() const { SN_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

namespace {
// Work queued on `waiter` from now on starts after the work queued on `first` so far.
void order_after(cudaStream_t waiter, cudaStream_t first) {
  if (waiter == first) return;
  CudaEvent point;
  point.record(first);
  point.block(waiter);
}
}  // namespace

CudaStreamGuard::CudaStreamGuard(cudaStream_t stream) : previous_(t_stream) {
  order_after(stream, previous_);
  t_stream = stream;
}

CudaStreamGuard::~CudaStreamGuard() {
  try {
    order_after(previous_, t_stream);
  } catch (const Error&) {  // a failed device stays failed: the next checked call reports it
  }
  t_stream = previous_;
}

CudaEvent::CudaEvent(bool timing) {
  SN_CUDA_CHECK(cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
}
CudaEvent::~CudaEvent() { cudaEventDestroy(event_); }  // legal while pending
void CudaEvent::record(cudaStream_t stream) { SN_CUDA_CHECK(cudaEventRecord(event_, stream)); }
void CudaEvent::block(cudaStream_t stream) const { SN_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0)); }
void CudaEvent::synchronize() const { SN_CUDA_CHECK(cudaEventSynchronize(event_)); }
bool CudaEvent::query() const {
  const cudaError_t status = cudaEventQuery(event_);
  if (status == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  SN_CUDA_CHECK(status);
  return true;
}
float CudaEvent::elapsed_ms(const CudaEvent& start) const {
  float ms = 0;
  SN_CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, event_));
  return ms;
}

namespace cuda {

void check_f32(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    SN_CHECK(t->dtype() == DType::f32, op, "expects f32, got ", dtype_name(t->dtype()), " ", shape_str(t->sizes()));
    SN_CHECK(t->device().is_cuda(), op, "expects a cuda tensor, got ", t->device().str());
  }
}

IndexView index_view(const char* op, const Tensor& index) {
  SN_CHECK(index.dim() == 1, op, "indices must be 1-d, got ", shape_str(index.sizes()));
  SN_CHECK(index.device().is_cuda(), op, "indices must be on the GPU, got ", index.device().str());
  SN_CHECK(index.dtype() == DType::i64 || index.dtype() == DType::i32, op, "indices must be i32 or i64, got ",
           dtype_name(index.dtype()));
  return {index.data_ptr(), index.stride(0), index.dtype() == DType::i64};
}

ErrorSlot* device_error_slot() {
  static ErrorSlot* slot = [] {
    void* p = nullptr;
    SN_CUDA_CHECK(cudaMalloc(&p, sizeof(ErrorSlot)));
    SN_CUDA_CHECK(cudaMemset(p, 0, sizeof(ErrorSlot)));
    return static_cast<ErrorSlot*>(p);
  }();
  return slot;
}

void check_device_errors() {
  // On the current stream, so that the read and the reset are ordered with its kernels (also
  // under a CudaStreamGuard on a non-blocking stream).
  ErrorSlot host{};
  SN_CUDA_CHECK(cudaMemcpyAsync(&host, device_error_slot(), sizeof(host), cudaMemcpyDeviceToHost, current_stream()));
  SN_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
  if (!host.raised) return;
  SN_CUDA_CHECK(cudaMemsetAsync(device_error_slot(), 0, sizeof(ErrorSlot), current_stream()));
  const bool target = host.code == (long long)DeviceError::target;
  fail(target ? "cross_entropy" : "embedding",
       std::string(target ? "target " : "index ") + std::to_string(host.value) + " at position " +
           std::to_string(host.position) + " outside [0, " + std::to_string(host.limit) + ")");
}

}  // namespace cuda

void CudaBackend::synchronize() {
  SN_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
  cuda::check_device_errors();
}

Backend& cuda_backend() {
  static CudaBackend* backend = [] {
    apply_cuda_precision_environment();
    register_allocator(DeviceType::CUDA, new CudaCachingAllocator());  // lives for the process
    int device = 0;
    SN_CUDA_CHECK(cudaGetDevice(&device));  // chosen before the first use (see comm_nccl.cpp)
    cuda::register_pinned_host(device);
    return new CudaBackend();
  }();
  return *backend;
}

}  // namespace sn
