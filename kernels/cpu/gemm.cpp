// kernels/cpu/gemm.cpp — GEMM on strided views through a CBLAS-style row-major SGEMM (leading
// dimensions, no copies): OpenBLAS, or the portable kernel of sgemm.cpp when built without BLAS.
#include <cstdint>
#include <exception>
#include <optional>

#include <omp.h>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/gemm_invariant.h"
#include "kernels/cpu/loops.h"
#include "kernels/cpu/sgemm.h"
#include "kernels/gemm_layout.h"

namespace sn {

using namespace cpu;

namespace {

// A view as BLAS sees it (kernels/gemm_layout.h), with its data.
struct BlasOperand {
  const float* ptr = nullptr;
  bool trans = false;
  int64_t ld = 1;
  bool ok = false;
};

BlasOperand describe(const Tensor& t) {
  const MatrixLayout m = matrix_layout(t);
  return {t.data<float>(), m.trans, m.ld, m.ok};
}

// The packed copy a non-BLAS-able view needs (a non-unit inner stride in both dims).
Tensor packed(const Tensor& t) {
  Tensor p = scratch_tensor(t.sizes(), t.device());
  backend_for(t.device()).copy(p, t);
  return p;
}

void gemm2d(const Tensor& c, const Tensor& a_in, const Tensor& b_in, float alpha, float beta) {
  const int64_t M = c.size(0), N = c.size(1), K = a_in.size(1);
  if (M == 0 || N == 0) return;
  BlasOperand cd = describe(c);
  SN_CHECK(cd.ok, "gemm", "output view with strides ", shape_str(c.strides()),
           " is not a BLAS matrix");
  if (cd.trans) {
    // Column-major output: compute c^T = b^T a^T instead.
    return gemm2d(c.t(), b_in.t(), a_in.t(), alpha, beta);
  }
  if (K == 0) {  // c = beta * c; beta = 0 must not keep NaNs of uninitialised memory
    if (beta == 0.f) backend_for(c.device()).fill(c, 0.f);
    else backend_for(c.device()).affine(c, c, beta, 0.f);
    return;
  }
  const bool blas = gemm_uses_blas();  // CBLAS takes int sizes; the portable kernel int64
  for (int64_t v : {M, N, K})
    SN_CHECK(!blas || v <= INT32_MAX, "gemm", "dimension ", v, " exceeds the BLAS int range");
  Tensor a = describe(a_in).ok ? a_in : packed(a_in);
  Tensor b = describe(b_in).ok ? b_in : packed(b_in);
  BlasOperand ad = describe(a), bd = describe(b);
  for (int64_t ld : {ad.ld, bd.ld, cd.ld})
    SN_CHECK(!blas || ld <= INT32_MAX, "gemm", "leading dimension ", ld, " exceeds the BLAS int range");
  gemm_rowmajor(ad.trans, bd.trans, M, N, K, alpha, ad.ptr, ad.ld, bd.ptr, bd.ld, beta, c.data<float>(), cd.ld);
}

}  // namespace

void CpuBackend::gemm(const Tensor& c, const Tensor& a, const Tensor& b, float alpha, float beta) {
  check_f32("gemm", {&c, &a, &b});
  if (a.dim() == 2) {
    SN_CHECK(b.dim() == 2 && c.dim() == 2 && a.size(1) == b.size(0) && c.size(0) == a.size(0) &&
                 c.size(1) == b.size(1),
             "gemm", "shapes ", shape_str(a.sizes()), " @ ", shape_str(b.sizes()), " -> ",
             shape_str(c.sizes()), " do not match");
    return gemm2d(c, a, b, alpha, beta);
  }
  SN_CHECK(a.dim() == 3 && b.dim() == 3 && c.dim() == 3 && a.size(0) == b.size(0) &&
               c.size(0) == a.size(0) && a.size(2) == b.size(1) && c.size(1) == a.size(1) &&
               c.size(2) == b.size(2),
           "gemm", "batched shapes ", shape_str(a.sizes()), " @ ", shape_str(b.sizes()), " -> ",
           shape_str(c.sizes()), " do not match");
  // Many matrices (attention's heads × batch): one per thread at a time. BLAS called inside the
  // parallel region runs single-threaded, and the small ones it would not split anyway. Few large
  // ones: one after another, each split by BLAS.
  const int64_t batch = a.size(0);
  const bool across = batch >= 2 * int64_t(omp_get_max_threads()) && !omp_in_parallel();
  std::exception_ptr failure;  // an error inside the parallel region is rethrown after it
  const bool invariant = RowInvariantProducts::active();  // the caller's, carried to the workers
#pragma omp parallel for schedule(static) if (across)
  for (int64_t i = 0; i < batch; ++i) {
    try {
      std::optional<RowInvariantProducts> same_bits;
      if (invariant && !RowInvariantProducts::active()) same_bits.emplace();
      gemm2d(c.select(0, i), a.select(0, i), b.select(0, i), alpha, beta);
    } catch (...) {
#pragma omp critical(sn_gemm_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace sn
