// kernels/cuda/blas.cu — GEMM on strided views through cuBLAS: nested windows and transposed
// views pass their leading dimensions straight through (no copies); dW accumulates in place with
// beta = 1. fp32 runs on the TF32 tensor cores unless set_cuda_tf32(false); with set_cuda_bf16
// the operands are rounded to bf16 (packed copies) and multiplied on the bf16 tensor cores,
// accumulating in fp32 into the fp32 output. cuBLAS itself is opened on first use
// (cublas_loader.h).
#include <cublas_v2.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "kernels/cuda/cublas_loader.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/gemm_layout.h"

namespace sn {
namespace cuda {
namespace {

std::atomic<bool> g_tf32{true};
std::atomic<bool> g_bf16{false};

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "error";
  }
}

#define SN_CUBLAS_CHECK(expr)                                                                \
  do {                                                                                       \
    cublasStatus_t sn_st_ = (expr);                                                          \
    if (sn_st_ != CUBLAS_STATUS_SUCCESS)                                                     \
      ::sn::fail("gemm", std::string(#expr) + " failed: " + cublas_status_name(sn_st_));    \
  } while (0)

// One handle per thread (cuBLAS handles are not thread-safe), bound to the current stream.
cublasHandle_t handle() {
  thread_local cublasHandle_t h = [] {
    cublasHandle_t created = nullptr;
    SN_CUBLAS_CHECK(cublas_api().create(&created));
    return created;
  }();
  SN_CUBLAS_CHECK(cublas_api().set_stream(h, current_stream()));
  return h;
}

// A view (or each matrix of a batch) as BLAS sees it: kernels/gemm_layout.h, with its data.
struct Operand {
  const float* ptr = nullptr;
  bool trans = false;
  int64_t ld = 1;
  bool ok = false;
};

Operand describe(const Tensor& t) {
  const MatrixLayout m = matrix_layout(t);
  return {fptr(t), m.trans, m.ld, m.ok};
}

Tensor packed(const Tensor& t) {
  Tensor p = scratch_tensor(t.sizes(), t.device());
  backend_for(t.device()).copy(p, t);
  return p;
}

// A packed row-major bf16 copy of a view (rounded to nearest even).
Tensor packed_bf16(const Tensor& t) {
  auto storage = std::make_shared<Storage>(size_t(t.numel()) * 2, t.device());
  Tensor p = Tensor::from_storage(storage, t.sizes(), contiguous_strides(t.sizes()), 0, DType::bf16);
  backend_for(t.device()).copy(p, t);
  return p;
}

// bf16 autocast: c (fp32, row-major [M, N], leading dimension ldc) = alpha a·b + beta c with a and
// b rounded to bf16 in packed copies (batch matrices M·K and K·N apart); fp32 accumulation.
void gemm_bf16(const Tensor& c, int64_t ldc, const Tensor& a_in, const Tensor& b_in, int64_t M, int64_t N,
               int64_t K, float alpha, float beta, int64_t batch) {
  for (int64_t v : {M, N, K, ldc, batch})  // cuBLAS takes these as int
    SN_CHECK(v <= INT32_MAX, "gemm", "dimension ", v, " exceeds the cuBLAS int range");
  const Tensor a = packed_bf16(a_in), b = packed_bf16(b_in);
  if (batch == 1) {
    SN_CUBLAS_CHECK(cublas_api().gemm_ex(handle(), CUBLAS_OP_N, CUBLAS_OP_N, int(N), int(M), int(K), &alpha,
                                         b.data_ptr(), CUDA_R_16BF, int(N), a.data_ptr(), CUDA_R_16BF, int(K), &beta,
                                         fptr(c), CUDA_R_32F, int(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  } else {
    SN_CUBLAS_CHECK(cublas_api().gemm_strided_batched_ex(
        handle(), CUBLAS_OP_N, CUBLAS_OP_N, int(N), int(M), int(K), &alpha, b.data_ptr(), CUDA_R_16BF, int(N), K * N,
        a.data_ptr(), CUDA_R_16BF, int(K), M * K, &beta, fptr(c), CUDA_R_32F, int(ldc), c.stride(0), int(batch),
        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

// c (row-major [M, N]) = alpha a [M, K] @ b [K, N] + beta c, batch matrices apart by the strides.
void gemm_rowmajor(const Tensor& c, const Tensor& a_in, const Tensor& b_in, float alpha, float beta,
                   int64_t batch) {
  const int64_t o = c.dim() - 2;
  const int64_t M = c.size(o), N = c.size(o + 1), K = a_in.size(o + 1);
  if (M == 0 || N == 0 || batch == 0) return;
  Operand cd = describe(c);
  SN_CHECK(cd.ok && !cd.trans, "gemm", "output view with strides ", shape_str(c.strides()),
           " is not a BLAS matrix");
  if (K == 0) {
    if (beta == 0.f) backend_for(c.device()).fill(c, 0.f);
    else backend_for(c.device()).affine(c, c, beta, 0.f);
    return;
  }
  if (g_bf16.load()) return gemm_bf16(c, cd.ld, a_in, b_in, M, N, K, alpha, beta, batch);
  // Batch strides of any value (0 for a broadcast operand) go to cuBLAS as they are.
  Tensor a = describe(a_in).ok ? a_in : packed(a_in);
  Tensor b = describe(b_in).ok ? b_in : packed(b_in);
  Operand ad = describe(a), bd = describe(b);
  for (int64_t v : {M, N, K, ad.ld, bd.ld, cd.ld, batch})
    SN_CHECK(v <= INT32_MAX, "gemm", "dimension ", v, " exceeds the cuBLAS int range");
  // Row-major C = A B is column-major C^T = B^T A^T: cuBLAS's first operand is b.
  const cublasOperation_t op_b = bd.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = ad.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasComputeType_t compute = g_tf32.load() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  if (batch == 1) {
    SN_CUBLAS_CHECK(cublas_api().gemm_ex(handle(), op_b, op_a, int(N), int(M), int(K), &alpha, bd.ptr, CUDA_R_32F,
                                         int(bd.ld), ad.ptr, CUDA_R_32F, int(ad.ld), &beta, fptr(c), CUDA_R_32F,
                                         int(cd.ld), compute, CUBLAS_GEMM_DEFAULT));
  } else {
    SN_CUBLAS_CHECK(cublas_api().gemm_strided_batched_ex(
        handle(), op_b, op_a, int(N), int(M), int(K), &alpha, bd.ptr, CUDA_R_32F, int(bd.ld), b.stride(0),
        ad.ptr, CUDA_R_32F, int(ad.ld), a.stride(0), &beta, fptr(c), CUDA_R_32F, int(cd.ld), c.stride(0),
        int(batch), compute, CUBLAS_GEMM_DEFAULT));
  }
}

void gemm_any(const Tensor& c, const Tensor& a, const Tensor& b, float alpha, float beta, int64_t batch) {
  if (describe(c).trans) {
    // A column-major output: compute c^T = b^T a^T instead.
    const int64_t o = c.dim() - 2;
    return gemm_any(c.transpose(o, o + 1), b.transpose(o, o + 1), a.transpose(o, o + 1), alpha, beta, batch);
  }
  gemm_rowmajor(c, a, b, alpha, beta, batch);
}

}  // namespace
}  // namespace cuda

void set_cuda_tf32(bool enabled) { cuda::g_tf32.store(enabled); }
bool cuda_tf32() { return cuda::g_tf32.load(); }
void set_cuda_bf16(bool enabled) { cuda::g_bf16.store(enabled); }
bool cuda_bf16() { return cuda::g_bf16.load(); }

void apply_cuda_precision_environment() {
  if (const char* tf32 = std::getenv("SN_CUDA_TF32")) set_cuda_tf32(std::string(tf32) != "0");
  if (const char* bf16 = std::getenv("SN_CUDA_BF16")) set_cuda_bf16(std::string(bf16) != "0");
}

using namespace cuda;

void CudaBackend::gemm(const Tensor& c, const Tensor& a, const Tensor& b, float alpha, float beta) {
  check_f32("gemm", {&c, &a, &b});
  if (a.dim() == 2) {
    SN_CHECK(b.dim() == 2 && c.dim() == 2 && a.size(1) == b.size(0) && c.size(0) == a.size(0) &&
                 c.size(1) == b.size(1),
             "gemm", "shapes ", shape_str(a.sizes()), " @ ", shape_str(b.sizes()), " -> ",
             shape_str(c.sizes()), " do not match");
    return gemm_any(c, a, b, alpha, beta, 1);
  }
  SN_CHECK(a.dim() == 3 && b.dim() == 3 && c.dim() == 3 && a.size(0) == b.size(0) &&
               c.size(0) == a.size(0) && a.size(2) == b.size(1) && c.size(1) == a.size(1) &&
               c.size(2) == b.size(2),
           "gemm", "batched shapes ", shape_str(a.sizes()), " @ ", shape_str(b.sizes()), " -> ",
           shape_str(c.sizes()), " do not match");
  gemm_any(c, a, b, alpha, beta, a.size(0));
}

}  // namespace sn
