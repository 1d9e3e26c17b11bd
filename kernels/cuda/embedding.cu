// kernels/cuda/embedding.cu — row gather and its gradient into the weight's window.
#include "kernels/cuda/launch.cuh"

namespace sn {
namespace cuda {
namespace {

__global__ void embedding_kernel(float* y, int64_t ys, const float* w, int64_t ws0, int64_t ws1, IndexView index,
                                 int64_t R, int64_t D, int64_t rows, ErrorSlot* error) {
  SN_GRID_STRIDE(j, R * D) {
    const int64_t r = j / D, k = j % D;
    const int64_t i = index[r];
    if (i < 0 || i >= rows) {
      raise_error(error, DeviceError::index, i, r, rows);
      continue;
    }
    y[r * ys + k] = w[i * ws0 + k * ws1];
  }
}

// Threads own columns and walk the positions in order, so repeated indices add without races
// and in the same order as on the CPU.
__global__ void embedding_backward_kernel(float* dw, int64_t ws0, int64_t ws1, const float* dy, int64_t dys,
                                          IndexView index, int64_t R, int64_t D, int64_t rows, ErrorSlot* error) {
  const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (k >= D) return;
  for (int64_t r = 0; r < R; ++r) {
    const int64_t i = index[r];
    if (i < 0 || i >= rows) {
      raise_error(error, DeviceError::index, i, r, rows);
      return;
    }
    dw[i * ws0 + k * ws1] += dy[r * dys + k];
  }
}

}  // namespace
}  // namespace cuda

using namespace cuda;

void CudaBackend::embedding(const Tensor& y, const Tensor& weight, const Tensor& index) {
  check_f32("embedding", {&y, &weight});
  const int64_t R = index.size(0), D = weight.size(1);
  if (R * D == 0) return;
  SN_CHECK(D <= 1 || y.stride(1) == 1, "embedding", "output rows need unit stride");
  embedding_kernel<<<blocks_for(R * D), kThreads, 0, current_stream()>>>(
      fptr(y), y.stride(0), fptr(weight), weight.stride(0), weight.stride(1), index_view("embedding", index), R, D,
      weight.size(0), device_error_slot());
  SN_CUDA_CHECK_LAUNCH();
}

void CudaBackend::embedding_backward(const Tensor& dweight, const Tensor& dy, const Tensor& index) {
  check_f32("embedding_backward", {&dweight, &dy});
  const int64_t R = index.size(0), D = dweight.size(1);
  if (R * D == 0) return;
  SN_CHECK(D <= 1 || dy.stride(1) == 1, "embedding_backward", "gradient rows need unit stride");
  embedding_backward_kernel<<<blocks_for(D), kThreads, 0, current_stream()>>>(
      fptr(dweight), dweight.stride(0), dweight.stride(1), fptr(dy), dy.stride(0),
      index_view("embedding_backward", index), R, D, dweight.size(0), device_error_slot());
  SN_CUDA_CHECK_LAUNCH();
}

}  // namespace sn
