// kernels/cuda/rows.cuh — row-wise kernels ([R, C] views with unit inner stride): a row belongs
// to one warp when it is short, to one block when it is long.
#pragma once

#include "kernels/cuda/launch.cuh"

namespace sn::cuda {

constexpr int kRowsPerWarpBlock = 8;
constexpr int kBlockRowThreads = 256;

// Rows of a group: a warp (blockDim = 32 x 8, row = blockIdx.x*8 + threadIdx.y) or a block.
template <bool kWarp>
struct RowGroup {
  __device__ static int64_t row() {
    return kWarp ? int64_t(blockIdx.x) * kRowsPerWarpBlock + threadIdx.y : int64_t(blockIdx.x);
  }
  __device__ static int lane() { return int(threadIdx.x); }
  __device__ static int size() { return kWarp ? 32 : int(blockDim.x); }
  template <class T>
  __device__ static T sum(T v, T* shared) {
    if (kWarp) {
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      return v;
    }
    return block_sum(v, shared);
  }
  __device__ static float max(float v, float* shared) {
    if (kWarp) {
      for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
      return v;
    }
    return block_max(v, shared);
  }
};

// Launches kernel<kWarp> over R rows of C: warps for short rows, blocks for long ones.
template <class WarpK, class BlockK>
void launch_rows(int64_t R, int64_t C, WarpK warp_kernel, BlockK block_kernel) {
  if (R == 0) return;
  if (C <= 1024) {
    dim3 block(32, kRowsPerWarpBlock);
    warp_kernel(dim3(unsigned((R + kRowsPerWarpBlock - 1) / kRowsPerWarpBlock)), block);
  } else {
    block_kernel(dim3(unsigned(R)), dim3(kBlockRowThreads));
  }
  SN_CUDA_CHECK_LAUNCH();
}

}  // namespace sn::cuda
