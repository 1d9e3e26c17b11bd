// kernels/cuda/pinned.h — page-locked host memory for asynchronous host -> device copies.
#pragma once

#include <cuda_runtime.h>

namespace sn::cuda {

// Registers the pinned host allocator (once), bound to `device`, the GPU this process uses.
void register_pinned_host(int device);
// After queuing a copy from pinned memory on `stream`: keeps the block from being handed out
// again before the stream passes this point. False when host_ptr is not pinned by us.
bool record_pinned_copy(const void* host_ptr, cudaStream_t stream);

}  // namespace sn::cuda
