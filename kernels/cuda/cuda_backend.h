// kernels/cuda/cuda_backend.h — the CUDA backend: a caching device allocator, streams, and the
// kernels implemented so far (the rest fall back to Backend's "not implemented" error).
#pragma once

#include <cuda_runtime.h>

#include "kernels/backend.h"

namespace sn {

// True when a CUDA device is present and usable.
bool cuda_available();
int cuda_device_count();
// The stream kernels of the current thread run on (the default stream until set).
cudaStream_t current_stream();

class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }
  // Same device, or host <-> device (then the host side must be contiguous; Tensor::to packs).
  void copy(const Tensor& dst, const Tensor& src) override;
  void fill(const Tensor& dst, float value) override;
};

// The backend instance; registers the CUDA allocator on first use.
Backend& cuda_backend();

}  // namespace sn
