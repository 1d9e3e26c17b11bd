// kernels/cuda/copy_fill.cu — fill and strided copy on the device; host <-> device transfers.
#include <type_traits>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/pinned.h"
#include "kernels/cuda/launch.cuh"

namespace sn {
namespace {

constexpr int kMaxDims = 8;

// Maps a row-major linear index to a strided element offset (sizes/strides passed by value).
struct Indexer {
  int dims = 0;
  int64_t sizes[kMaxDims];
  int64_t strides[kMaxDims];
  __host__ __device__ int64_t offset(int64_t linear) const {
    int64_t off = 0;
    for (int d = dims - 1; d >= 0; --d) {
      off += (linear % sizes[d]) * strides[d];
      linear /= sizes[d];
    }
    return off;
  }
};

Indexer indexer_of(const Tensor& t) {
  SN_CHECK(t.dim() <= kMaxDims, "cuda", "at most ", kMaxDims, " dims, got ", shape_str(t.sizes()));
  Indexer ix;
  ix.dims = int(t.dim());
  for (int d = 0; d < ix.dims; ++d) {
    ix.sizes[d] = t.size(d);
    ix.strides[d] = t.stride(d);
  }
  return ix;
}

template <class T>
__global__ void fill_kernel(T* dst, Indexer ix, int64_t n, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[ix.offset(i)] = value;
}

template <class T>
__global__ void copy_kernel(T* dst, Indexer dix, const T* src, Indexer six, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[dix.offset(i)] = src[six.offset(i)];
}

// Element conversion between dtypes (bf16 as its 16 bits; round to nearest even, as the CPU).
template <class T>
__device__ float to_float(T v) { return float(v); }
template <>
__device__ float to_float<uint16_t>(uint16_t v) { return __uint_as_float(uint32_t(v) << 16); }
template <class T>
__device__ T from_float(float v) { return T(v); }
template <>
__device__ uint16_t from_float<uint16_t>(float v) {
  const uint32_t u = __float_as_uint(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // NaN stays NaN
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// D and S are the storage types (uint16_t = bf16); integers convert exactly through int64.
template <class D, class S, bool kBf16Src, bool kBf16Dst>
__global__ void convert_kernel(D* dst, Indexer dix, const S* src, Indexer six, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const S v = src[six.offset(i)];
    if constexpr (kBf16Src || kBf16Dst) {
      const float f = kBf16Src ? to_float<uint16_t>(uint16_t(v)) : float(v);
      dst[dix.offset(i)] = kBf16Dst ? D(from_float<uint16_t>(f)) : D(f);
    } else {
      dst[dix.offset(i)] = D(v);
    }
  }
}

int blocks_for(int64_t n) { return int(std::min<int64_t>((n + 255) / 256, 65535)); }

template <class T>
void fill_typed(const Tensor& dst, T value) {
  int64_t n = dst.numel();
  if (n == 0) return;
  fill_kernel<T><<<blocks_for(n), 256, 0, current_stream()>>>(static_cast<T*>(dst.data_ptr()),
                                                              indexer_of(dst), n, value);
  SN_CUDA_CHECK_LAUNCH();
}

}  // namespace

void CudaBackend::fill(const Tensor& dst, float value) {
  switch (dst.dtype()) {
    case DType::f32: return fill_typed<float>(dst, value);
    case DType::bf16: return fill_typed<uint16_t>(dst, float_to_bf16(value).bits);
    case DType::i32: return fill_typed<int32_t>(dst, int32_t(value));
    case DType::i64: return fill_typed<int64_t>(dst, int64_t(value));
  }
}

namespace {
template <class D>
void convert_to(const Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  D* d = static_cast<D*>(dst.data_ptr());
  auto go = [&](auto tag, auto src_bf16) {
    using S = decltype(tag);
    constexpr bool kDstBf16 = std::is_same_v<D, uint16_t>;
    convert_kernel<D, S, decltype(src_bf16)::value, kDstBf16><<<blocks_for(n), 256, 0, current_stream()>>>(
        d, indexer_of(dst), static_cast<const S*>(src.data_ptr()), indexer_of(src), n);
    SN_CUDA_CHECK_LAUNCH();
  };
  switch (src.dtype()) {
    case DType::f32: return go(float{}, std::false_type{});
    case DType::bf16: return go(uint16_t{}, std::true_type{});
    case DType::i32: return go(int32_t{}, std::false_type{});
    case DType::i64: return go(int64_t{}, std::false_type{});
  }
}

void convert(const Tensor& dst, const Tensor& src) {
  switch (dst.dtype()) {
    case DType::f32: return convert_to<float>(dst, src);
    case DType::bf16: return convert_to<uint16_t>(dst, src);
    case DType::i32: return convert_to<int32_t>(dst, src);
    case DType::i64: return convert_to<int64_t>(dst, src);
  }
}
}  // namespace

void CudaBackend::copy(const Tensor& dst, const Tensor& src) {
  SN_CHECK(dst.sizes() == src.sizes(), "copy", "sizes differ: ", shape_str(dst.sizes()), " vs ",
           shape_str(src.sizes()));
  if (dst.dtype() != src.dtype()) {
    SN_CHECK(dst.device().is_cuda() && src.device().is_cuda(), "copy",
             "host <-> device copies keep the dtype; convert on one side first");
    return convert(dst, src);
  }
  const size_t bytes = size_t(dst.numel()) * element_size(dst.dtype());
  if (bytes == 0) return;
  if (dst.device().is_cpu() || src.device().is_cpu()) {
    SN_CHECK(dst.is_contiguous() && src.is_contiguous(), "copy",
             "host <-> device copies need contiguous tensors");
    cudaMemcpyKind kind = dst.device().is_cpu() ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice;
    SN_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), bytes, kind, current_stream()));
    SN_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
    if (kind == cudaMemcpyDeviceToHost) cuda::check_device_errors();  // what the host reads is checked
    return;
  }
  if (dst.is_contiguous() && src.is_contiguous()) {
    SN_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), bytes, cudaMemcpyDeviceToDevice, current_stream()));
    return;
  }
  const int64_t n = dst.numel();
  auto launch = [&](auto tag) {
    using T = decltype(tag);
    copy_kernel<T><<<blocks_for(n), 256, 0, current_stream()>>>(
        static_cast<T*>(dst.data_ptr()), indexer_of(dst), static_cast<const T*>(src.data_ptr()),
        indexer_of(src), n);
    SN_CUDA_CHECK_LAUNCH();
  };
  switch (element_size(dst.dtype())) {
    case 2: return launch(uint16_t{});
    case 4: return launch(uint32_t{});
    default: return launch(uint64_t{});
  }
}

void CudaBackend::copy_non_blocking(const Tensor& dst, const Tensor& src) {
  const bool staged = src.device().is_cpu() && dst.device().is_cuda() && src.is_pinned() &&
                      dst.dtype() == src.dtype() && dst.sizes() == src.sizes() && dst.is_contiguous() &&
                      src.is_contiguous();
  if (!staged) return copy(dst, src);
  const size_t bytes = size_t(dst.numel()) * element_size(dst.dtype());
  if (bytes == 0) return;
  SN_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), bytes, cudaMemcpyHostToDevice, current_stream()));
  // The source block stays out of the pinned cache until the copy is done; memory pinned by
  // someone else has no such guard, so wait for it.
  if (!cuda::record_pinned_copy(src.data_ptr(), current_stream()))
    SN_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
}

}  // namespace sn
