// kernels/cuda/reduce.cu — sum_to: sums over the dims where the output has size 1.
//
// Each output element is owned by one thread (few reduced elements) or one block (many), so
// there are no atomics and the result does not depend on scheduling. Sums are kept in double.
#include "kernels/cuda/launch.cuh"

namespace sn {
namespace cuda {
namespace {

// kept: (out, x) over the kept dims; reduced: x over the summed dims.
__global__ void sum_thread_per_output(float* out, const float* x, Strided<2> kept, Strided<1> reduced,
                                      int64_t n_out, int64_t n_red, bool accumulate) {
  SN_GRID_STRIDE(i, n_out) {
    int64_t ko[2];
    kept.offsets(i, ko);
    double s = 0.0;
    for (int64_t j = 0; j < n_red; ++j) {
      int64_t ro[1];
      reduced.offsets(j, ro);
      s += x[ko[1] + ro[0]];
    }
    out[ko[0]] = float(accumulate ? double(out[ko[0]]) + s : s);
  }
}

__global__ void sum_block_per_output(float* out, const float* x, Strided<2> kept, Strided<1> reduced,
                                     int64_t n_out, int64_t n_red, bool accumulate) {
  __shared__ double shared[32];
  for (int64_t i = blockIdx.x; i < n_out; i += gridDim.x) {
    int64_t ko[2];
    kept.offsets(i, ko);
    double s = 0.0;
    if (reduced.contiguous) {
      for (int64_t j = threadIdx.x; j < n_red; j += blockDim.x) s += x[ko[1] + j];
    } else {
      for (int64_t j = threadIdx.x; j < n_red; j += blockDim.x) {
        int64_t ro[1];
        reduced.offsets(j, ro);
        s += x[ko[1] + ro[0]];
      }
    }
    s = block_sum(s, shared);
    if (threadIdx.x == 0) out[ko[0]] = float(accumulate ? double(out[ko[0]]) + s : s);
  }
}

}  // namespace
}  // namespace cuda

using namespace cuda;

void CudaBackend::sum_to(const Tensor& out, const Tensor& x, bool accumulate) {
  check_f32("sum_to", {&out, &x});
  SN_CHECK(out.dim() == x.dim(), "sum_to", "ranks differ: ", shape_str(out.sizes()), " vs ",
           shape_str(x.sizes()));
  Shape kept_sizes, kept_out, kept_x, red_sizes, red_x;
  for (int64_t d = 0; d < x.dim(); ++d) {
    SN_CHECK(out.size(d) == x.size(d) || out.size(d) == 1, "sum_to", "cannot sum ",
             shape_str(x.sizes()), " to ", shape_str(out.sizes()));
    if (out.size(d) == x.size(d)) {
      kept_sizes.push_back(x.size(d));
      kept_out.push_back(out.stride(d));
      kept_x.push_back(x.stride(d));
    } else {
      red_sizes.push_back(x.size(d));
      red_x.push_back(x.stride(d));
    }
  }
  const int64_t n_out = out.numel(), n_red = x.numel() / std::max<int64_t>(n_out, 1);
  if (n_out == 0) return;
  if (x.numel() == 0) {
    if (!accumulate) fill(out, 0.f);
    return;
  }
  Strided<2> kept = collapse<2>(kept_sizes, {kept_out, kept_x});
  Strided<1> reduced = collapse<1>(red_sizes, {red_x});
  // Few outputs with long sums: a block each; otherwise a thread each (coalesced when the kept
  // dim is innermost, as for a bias gradient [N, C] -> [1, C]).
  if (n_red >= 1024 && n_out < 4 * 132 * 8) {
    sum_block_per_output<<<int(std::min<int64_t>(n_out, 65535)), kThreads, 0, current_stream()>>>(
        fptr(out), fptr(x), kept, reduced, n_out, n_red, accumulate);
  } else {
    sum_thread_per_output<<<blocks_for(n_out), kThreads, 0, current_stream()>>>(
        fptr(out), fptr(x), kept, reduced, n_out, n_red, accumulate);
  }
  SN_CUDA_CHECK_LAUNCH();
}

}  // namespace sn
