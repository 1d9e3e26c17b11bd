// kernels/cuda/launch.cuh — what every CUDA kernel file shares: strided indexing over N operands,
// grid sizing, and the argument checks.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"

namespace sn::cuda {

constexpr int kMaxDims = 8;
constexpr int kThreads = 256;

// Blocks for n items of work, one per thread, capped (kernels loop grid-stride beyond it).
inline int blocks_for(int64_t n, int threads = kThreads) {
  return int(std::clamp<int64_t>((n + threads - 1) / threads, 1, 65535LL * 8));
}

#define SN_GRID_STRIDE(i, n)                                                             \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n);             \
       i += int64_t(gridDim.x) * blockDim.x)

// N operands of equal sizes and arbitrary strides, collapsed like the CPU loops: size-1 dims
// dropped, dims contiguous for every operand merged. offsets() maps a row-major linear index to
// each operand's element offset.
template <int N>
struct Strided {
  int dims = 0;
  int64_t sizes[kMaxDims];
  int64_t strides[N][kMaxDims];
  bool contiguous = true;  // every operand is one dense run: offsets are the linear index

  __device__ __forceinline__ void offsets(int64_t linear, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = dims - 1; d >= 0; --d) {
      const int64_t i = linear % sizes[d];
      linear /= sizes[d];
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += i * strides[k][d];
    }
  }
};

template <int N>
Strided<N> collapse(const Shape& sizes, const std::array<Shape, N>& strides) {
  Strided<N> s;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 1) continue;
    bool merge = s.dims > 0;
    for (int k = 0; k < N && merge; ++k)
      merge = s.strides[k][s.dims - 1] == strides[size_t(k)][d] * sizes[d];
    if (merge) {
      s.sizes[s.dims - 1] *= sizes[d];
      for (int k = 0; k < N; ++k) s.strides[k][s.dims - 1] = strides[size_t(k)][d];
    } else {
      SN_CHECK(s.dims < kMaxDims, "cuda", "views of more than ", kMaxDims,
               " non-mergeable dims are not supported: ", shape_str(sizes));
      s.sizes[s.dims] = sizes[d];
      for (int k = 0; k < N; ++k) s.strides[k][s.dims] = strides[size_t(k)][d];
      ++s.dims;
    }
  }
  s.contiguous = s.dims <= 1;
  for (int k = 0; k < N && s.contiguous; ++k) s.contiguous = s.dims == 0 || s.strides[k][0] == 1;
  return s;
}

template <int N>
Strided<N> strided_of(const Shape& sizes, const std::array<const Tensor*, N>& ts) {
  std::array<Shape, N> strides;
  for (int k = 0; k < N; ++k) strides[size_t(k)] = ts[size_t(k)]->strides();
  return collapse<N>(sizes, strides);
}

// Checks that a kernel got f32 tensors on a CUDA device (undefined ones are skipped).
void check_f32(const char* op, std::initializer_list<const Tensor*> ts);

// A tensor's pointer typed for a kernel argument.
inline float* fptr(const Tensor& t) { return t.defined() ? static_cast<float*>(t.data_ptr()) : nullptr; }

// Element i of an optional per-row/per-channel vector with stride s, or dflt when absent.
__device__ __forceinline__ float opt_at(const float* p, int64_t i, int64_t s, float dflt) {
  return p ? p[i * s] : dflt;
}

// Sums v over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* shared /* [32] */) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // shared may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / 32;
  v = lane < warps ? shared[lane] : T(0);
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <class T>
__device__ __forceinline__ T block_max(T v, T* shared /* [32] */) {
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x / 32;
  v = lane < warps ? shared[lane] : shared[0];
  for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Reads an index (i32 or i64) at position r of a 1-d tensor.
struct IndexView {
  const void* ptr = nullptr;
  int64_t stride = 1;
  bool is64 = true;
  __device__ __forceinline__ int64_t operator[](int64_t r) const {
    return is64 ? static_cast<const int64_t*>(ptr)[r * stride]
                : int64_t(static_cast<const int32_t*>(ptr)[r * stride]);
  }
};
IndexView index_view(const char* op, const Tensor& index);

// Bad input found by a kernel (an index out of range) raises the device's error flag instead of
// reading out of bounds. The flag is read at the next synchronisation (a device-to-host copy,
// Backend::synchronize), which throws an sn::Error naming the op, the value and its position:
// no kernel waits for the check, as with the frameworks' device-side asserts.
enum class DeviceError : long long { none = 0, target = 1, index = 2 };
struct ErrorSlot {
  long long raised, code, value, position, limit;
};
// The flag of the current device (allocated and cleared on first use).
ErrorSlot* device_error_slot();
// Throws (and clears the flag) if a kernel raised it; call only after the stream is synchronised.
void check_device_errors();

__device__ __forceinline__ void raise_error(ErrorSlot* slot, DeviceError code, int64_t value, int64_t position,
                                            int64_t limit) {
  if (atomicCAS(reinterpret_cast<unsigned long long*>(&slot->raised), 0ull, 1ull) == 0ull) {
    slot->code = (long long)code;
    slot->value = value;
    slot->position = position;
    slot->limit = limit;
  }
}

}  // namespace sn::cuda
