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

// ---- rows held in registers ----------------------------------------------------------------
// A row of C floats (C % 4 == 0, 16-byte aligned) read once into registers as float4 chunks:
// chunk i of a thread is float4 number i·G + lane of the row, so a warp's loads are coalesced;
// chunks past the row hold `pad`. The statistics and the output then come from the registers,
// so the row crosses device memory once in each direction.
constexpr int kRegChunks = 8;                    // float4 chunks per thread
// The longest row: 512 threads (at 1024 the kernels could need more registers than a block may
// have; such rows take the generic path).
constexpr int64_t kRegMaxCols = 4 * kRegChunks * 512;

__device__ __forceinline__ bool chunk_in_row(int i, int lane, int G, int64_t C) {
  return (int64_t(i) * G + lane) * 4 < C;
}

__device__ __forceinline__ void load_row(float4 (&v)[kRegChunks], const float* row, int64_t C, int lane, int G,
                                         float pad) {
  const float4* r4 = reinterpret_cast<const float4*>(row);
#pragma unroll
  for (int i = 0; i < kRegChunks; ++i)
    v[i] = chunk_in_row(i, lane, G, C) ? r4[int64_t(i) * G + lane] : make_float4(pad, pad, pad, pad);
}

template <class F>
__device__ __forceinline__ void store_row(float* row, const float4 (&v)[kRegChunks], int64_t C, int lane, int G, F f) {
  float4* r4 = reinterpret_cast<float4*>(row);
#pragma unroll
  for (int i = 0; i < kRegChunks; ++i) {
    if (!chunk_in_row(i, lane, G, C)) continue;
    const int64_t j = int64_t(i) * G + lane;
    r4[j] = make_float4(f(v[i].x, 4 * j), f(v[i].y, 4 * j + 1), f(v[i].z, 4 * j + 2), f(v[i].w, 4 * j + 3));
  }
}

// Whether rows of these views can be held in registers (and the threads per row to use).
inline bool rows_fit_registers(int64_t C, std::initializer_list<std::pair<const void*, int64_t>> rows) {
  if (C == 0 || C % 4 != 0 || C > kRegMaxCols) return false;
  for (auto [ptr, stride] : rows)
    if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0 || stride % 4 != 0) return false;
  return true;
}
// Warps for rows up to 32·4·kRegChunks; else the fewest threads (128..1024) that cover the row.
inline int register_row_threads(int64_t C) {
  int threads = 128;
  while (int64_t(threads) * 4 * kRegChunks < C) threads *= 2;
  return threads;
}

// Launches kernel<kWarp> over R register-held rows of C.
template <class WarpK, class BlockK>
void launch_register_rows(int64_t R, int64_t C, WarpK warp_kernel, BlockK block_kernel) {
  if (R == 0) return;
  if (C <= 32 * 4 * kRegChunks) {
    warp_kernel(dim3(unsigned((R + kRowsPerWarpBlock - 1) / kRowsPerWarpBlock)), dim3(32, kRowsPerWarpBlock));
  } else {
    block_kernel(dim3(unsigned(R)), dim3(unsigned(register_row_threads(C))));
  }
  SN_CUDA_CHECK_LAUNCH();
}

}  // namespace sn::cuda
