// kernels/cpu/embedding.cpp — row gather and its scatter-add gradient into the weight's window.
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace sn {

using namespace cpu;

namespace {
int64_t index_at(const Tensor& index, int64_t r) {
  if (index.dtype() == DType::i64) return index.data<int64_t>()[r * index.stride(0)];
  SN_CHECK(index.dtype() == DType::i32, "embedding", "indices must be i32 or i64, got ",
           dtype_name(index.dtype()));
  return index.data<int32_t>()[r * index.stride(0)];
}
// Every index names a row of the table (checked before any thread reads or writes).
void check_indices(const char* op, const Tensor& index, int64_t rows) {
  for (int64_t r = 0; r < index.size(0); ++r) {
    const int64_t i = index_at(index, r);
    SN_CHECK(i >= 0 && i < rows, op, "index ", i, " at position ", r, " outside [0, ", rows, ")");
  }
}
}  // namespace

void CpuBackend::embedding(const Tensor& y, const Tensor& weight, const Tensor& index) {
  check_f32("embedding", {&y, &weight});
  check_rows("embedding", {&y});
  const int64_t R = index.size(0), D = weight.size(1);
  check_indices("embedding", index, weight.size(0));
  parallel_for(R, D, [&](int64_t r) {
    const float* src = weight.data<float>() + index_at(index, r) * weight.stride(0);
    float* dst = y.data<float>() + r * y.stride(0);
    for (int64_t k = 0; k < D; ++k) dst[k] = src[k * weight.stride(1)];
  });
}

void CpuBackend::embedding_backward(const Tensor& dweight, const Tensor& dy, const Tensor& index) {
  check_f32("embedding_backward", {&dweight, &dy});
  check_rows("embedding_backward", {&dy});
  const int64_t R = index.size(0), D = dweight.size(1);
  check_indices("embedding_backward", index, dweight.size(0));
  // Threads own column ranges, so repeated indices never race.
  const int64_t chunks = std::min<int64_t>(std::max<int64_t>(1, R * D / kParallelGrain), 8);
  const int64_t chunk = (D + chunks - 1) / chunks;
  parallel_for(chunks, kParallelGrain, [&](int64_t c) {
    int64_t k0 = c * chunk, k1 = std::min(D, k0 + chunk);
    for (int64_t r = 0; r < R; ++r) {
      float* dst = dweight.data<float>() + index_at(index, r) * dweight.stride(0);
      const float* src = dy.data<float>() + r * dy.stride(0);
      for (int64_t k = k0; k < k1; ++k) dst[k * dweight.stride(1)] += src[k];
    }
  });
}

}  // namespace sn
