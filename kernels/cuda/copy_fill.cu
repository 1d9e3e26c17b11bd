// kernels/cuda/copy_fill.cu — fill and strided copy on the device; host <-> device transfers.
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"

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

void CudaBackend::copy(const Tensor& dst, const Tensor& src) {
  SN_CHECK(dst.sizes() == src.sizes(), "copy", "sizes differ: ", shape_str(dst.sizes()), " vs ",
           shape_str(src.sizes()));
  SN_CHECK(dst.dtype() == src.dtype(), "copy", "dtype conversion on the GPU is not implemented (",
           dtype_name(src.dtype()), " -> ", dtype_name(dst.dtype()), ")");
  const size_t bytes = size_t(dst.numel()) * element_size(dst.dtype());
  if (bytes == 0) return;
  if (dst.device().is_cpu() || src.device().is_cpu()) {
    SN_CHECK(dst.is_contiguous() && src.is_contiguous(), "copy",
             "host <-> device copies need contiguous tensors");
    cudaMemcpyKind kind = dst.device().is_cpu() ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice;
    SN_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), bytes, kind, current_stream()));
    SN_CUDA_CHECK(cudaStreamSynchronize(current_stream()));
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

}  // namespace sn
