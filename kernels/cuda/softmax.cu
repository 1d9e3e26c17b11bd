// kernels/cuda/softmax.cu — softmax / log-softmax over rows and the fused cross-entropy.
//
// Rows are [R, C] views with unit inner stride and any row stride (a nested window of a wider
// output is a row stride). A row belongs to one warp when C is small, to one block otherwise; the
// statistics come from one online pass (running max and rescaled sum), so x is read twice at most.
#include <cmath>

#include "kernels/cuda/rows.cuh"

namespace sn {
namespace cuda {
namespace {

// Running (max, sum of exp(x - max)) of one thread's share of a row, merged across the group.
template <bool kWarp>
__device__ float row_logsumexp(const float* xr, int64_t C, float* shared, float* sum_x = nullptr) {
  using G = RowGroup<kWarp>;
  float m = -INFINITY, s = 0.f, sx = 0.f;
  for (int64_t i = G::lane(); i < C; i += G::size()) {
    const float v = xr[i];
    sx += v;
    if (v > m) {
      s = s * expf(m - v) + 1.f;  // exp(-inf) = 0 on the first element
      m = v;
    } else if (v != -INFINITY) {  // -inf adds nothing (-inf - -inf would be NaN); NaN propagates
      s += expf(v - m);
    }
  }
  const float M = G::max(m, shared);
  if (isinf(M)) {  // as on the CPU: a row of -inf gives -inf, a +inf logit gives +inf (M is uniform)
    if (sum_x) *sum_x = 0.f;
    return M;
  }
  const float scaled = m == -INFINITY ? 0.f : s * expf(m - M);
  const float S = G::sum(scaled, shared);
  if (sum_x) *sum_x = G::sum(sx, shared);
  return M == -INFINITY ? M : M + logf(S);
}

template <bool kWarp>
__global__ void softmax_kernel(float* y, int64_t ys, const float* x, int64_t xs, int64_t R, int64_t C, bool log) {
  __shared__ float shared[32];
  using G = RowGroup<kWarp>;
  const int64_t r = G::row();
  if (r >= R) return;  // whole warps/blocks leave together
  const float* xr = x + r * xs;
  float* yr = y + r * ys;
  const float lse = row_logsumexp<kWarp>(xr, C, shared);
  for (int64_t i = G::lane(); i < C; i += G::size()) yr[i] = log ? xr[i] - lse : expf(xr[i] - lse);
}

template <bool kWarp>
__global__ void softmax_backward_kernel(float* dx, int64_t dxs, const float* dy, int64_t dys, const float* y,
                                        int64_t yss, int64_t R, int64_t C, bool log) {
  __shared__ float shared[32];
  using G = RowGroup<kWarp>;
  const int64_t r = G::row();
  if (r >= R) return;
  const float* yr = y + r * yss;
  const float* gr = dy + r * dys;
  float* dr = dx + r * dxs;
  float s = 0.f;
  for (int64_t i = G::lane(); i < C; i += G::size()) s += log ? gr[i] : gr[i] * yr[i];
  s = G::sum(s, shared);
  for (int64_t i = G::lane(); i < C; i += G::size())
    dr[i] = log ? gr[i] - expf(yr[i]) * s : yr[i] * (gr[i] - s);
}

template <bool kWarp>
__global__ void cross_entropy_kernel(float* loss, int64_t ls, float* lse_out, int64_t lses, const float* x,
                                     int64_t xs, IndexView target, int64_t R, int64_t C, int64_t ignore,
                                     float smoothing, ErrorSlot* error) {
  __shared__ float shared[32];
  using G = RowGroup<kWarp>;
  const int64_t r = G::row();
  if (r >= R) return;
  const float* xr = x + r * xs;
  float sum_x = 0.f;
  const float lse = row_logsumexp<kWarp>(xr, C, shared, &sum_x);
  if (G::lane() != 0) return;
  lse_out[r * lses] = lse;
  const int64_t t = target[r];
  float value = 0.f;
  if (t != ignore) {
    if (t < 0 || t >= C) {
      raise_error(error, DeviceError::target, t, r, C);
      loss[r * ls] = 0.f;
      return;
    }
    value = (1.f - smoothing) * (lse - xr[t]);
    if (smoothing > 0.f) value += smoothing * (lse - sum_x / float(C));
  }
  loss[r * ls] = value;
}

__global__ void cross_entropy_backward_kernel(float* dl, int64_t dls, const float* dloss, int64_t dlosss,
                                              const float* x, int64_t xs, const float* lse, int64_t lses,
                                              IndexView target, int64_t R, int64_t C, int64_t ignore,
                                              float smoothing) {
  // One thread per element, rows in blockIdx.y (so the row's scalars are loaded once per block).
  for (int64_t r = blockIdx.y; r < R; r += gridDim.y) {
    const int64_t t = target[r];
    const float* xr = x + r * xs;
    float* dr = dl + r * dls;
    const float g = dloss[r * dlosss], l = lse[r * lses];
    const float uniform = smoothing / float(C);
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < C; i += int64_t(gridDim.x) * blockDim.x) {
      if (t == ignore) {
        dr[i] = 0.f;
        continue;
      }
      float v = g * (expf(xr[i] - l) - uniform);
      if (i == t) v -= g * (1.f - smoothing);
      dr[i] = v;
    }
  }
}

// ---- the same on rows held in registers (C % 4 == 0, aligned): one read of x ---------------

template <bool kWarp>
__device__ float register_row_logsumexp(const float4 (&v)[kRegChunks], float* shared) {
  using G = RowGroup<kWarp>;
  float m = -INFINITY;
#pragma unroll
  for (int i = 0; i < kRegChunks; ++i) m = fmaxf(m, fmaxf(fmaxf(v[i].x, v[i].y), fmaxf(v[i].z, v[i].w)));
  const float M = G::max(m, shared);
  if (isinf(M)) return M;  // as on the CPU
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < kRegChunks; ++i)  // padding is -inf: exp gives 0
    s += expf(v[i].x - M) + expf(v[i].y - M) + expf(v[i].z - M) + expf(v[i].w - M);
  return M + logf(G::sum(s, shared));
}

template <bool kWarp>
__global__ void softmax_registers(float* y, int64_t ys, const float* x, int64_t xs, int64_t R, int64_t C, bool log) {
  __shared__ float shared[32];
  using G = RowGroup<kWarp>;
  const int64_t r = G::row();
  if (r >= R) return;
  float4 v[kRegChunks];
  load_row(v, x + r * xs, C, G::lane(), G::size(), -INFINITY);
  const float lse = register_row_logsumexp<kWarp>(v, shared);
  if (log) store_row(y + r * ys, v, C, G::lane(), G::size(), [lse](float a, int64_t) { return a - lse; });
  else store_row(y + r * ys, v, C, G::lane(), G::size(), [lse](float a, int64_t) { return expf(a - lse); });
}

template <bool kWarp>
__global__ void cross_entropy_registers(float* loss, int64_t ls, float* lse_out, int64_t lses, const float* x,
                                        int64_t xs, IndexView target, int64_t R, int64_t C, int64_t ignore,
                                        float smoothing, ErrorSlot* error) {
  __shared__ float shared[32];
  using G = RowGroup<kWarp>;
  const int64_t r = G::row();
  if (r >= R) return;
  const float* xr = x + r * xs;
  float4 v[kRegChunks];
  load_row(v, xr, C, G::lane(), G::size(), -INFINITY);
  const float lse = register_row_logsumexp<kWarp>(v, shared);
  float sum_x = 0.f;
  if (smoothing > 0.f) {
#pragma unroll
    for (int i = 0; i < kRegChunks; ++i)
      if (chunk_in_row(i, G::lane(), G::size(), C)) sum_x += v[i].x + v[i].y + v[i].z + v[i].w;
    sum_x = G::sum(sum_x, shared);
  }
  if (G::lane() != 0) return;
  lse_out[r * lses] = lse;
  const int64_t t = target[r];
  float value = 0.f;
  if (t != ignore) {
    if (t < 0 || t >= C) {
      raise_error(error, DeviceError::target, t, r, C);
    } else {
      value = (1.f - smoothing) * (lse - xr[t]);
      if (smoothing > 0.f) value += smoothing * (lse - sum_x / float(C));
    }
  }
  loss[r * ls] = value;
}

void check_rows(const char* op, const Tensor& t) {
  SN_CHECK(t.dim() == 2 && (t.size(1) <= 1 || t.stride(1) == 1), op,
           "expects rows [R, C] with unit inner stride, got sizes ", shape_str(t.sizes()),
           " strides ", shape_str(t.strides()));
}

}  // namespace
}  // namespace cuda

using namespace cuda;

void CudaBackend::softmax(const Tensor& y, const Tensor& x, bool log) {
  check_f32("softmax", {&y, &x});
  check_rows("softmax", x);
  check_rows("softmax", y);
  const int64_t R = x.size(0), C = x.size(1);
  float* yp = fptr(y);
  const float* xp = fptr(x);
  const int64_t ys = y.stride(0), xs = x.stride(0);
  if (rows_fit_registers(C, {{xp, xs}, {yp, ys}})) {
    return launch_register_rows(
        R, C,
        [&](dim3 g, dim3 b) { softmax_registers<true><<<g, b, 0, current_stream()>>>(yp, ys, xp, xs, R, C, log); },
        [&](dim3 g, dim3 b) { softmax_registers<false><<<g, b, 0, current_stream()>>>(yp, ys, xp, xs, R, C, log); });
  }
  launch_rows(
      R, C,
      [&](dim3 g, dim3 b) { softmax_kernel<true><<<g, b, 0, current_stream()>>>(yp, ys, xp, xs, R, C, log); },
      [&](dim3 g, dim3 b) { softmax_kernel<false><<<g, b, 0, current_stream()>>>(yp, ys, xp, xs, R, C, log); });
}

void CudaBackend::softmax_backward(const Tensor& dx, const Tensor& dy, const Tensor& y, bool log) {
  check_f32("softmax_backward", {&dx, &dy, &y});
  check_rows("softmax_backward", dx);
  check_rows("softmax_backward", dy);
  check_rows("softmax_backward", y);
  const int64_t R = y.size(0), C = y.size(1);
  float* d = fptr(dx);
  const float* g = fptr(dy);
  const float* yp = fptr(y);
  const int64_t a = dx.stride(0), b = dy.stride(0), c = y.stride(0);
  launch_rows(
      R, C,
      [&](dim3 gr, dim3 bl) {
        softmax_backward_kernel<true><<<gr, bl, 0, current_stream()>>>(d, a, g, b, yp, c, R, C, log);
      },
      [&](dim3 gr, dim3 bl) {
        softmax_backward_kernel<false><<<gr, bl, 0, current_stream()>>>(d, a, g, b, yp, c, R, C, log);
      });
}

void CudaBackend::cross_entropy(const Tensor& loss, const Tensor& lse, const Tensor& logits,
                                const Tensor& target, int64_t ignore_index, float smoothing) {
  check_f32("cross_entropy", {&loss, &lse, &logits});
  check_rows("cross_entropy", logits);
  const int64_t R = logits.size(0), C = logits.size(1);
  if (R == 0) return;
  const IndexView t = index_view("cross_entropy", target);
  ErrorSlot* error = device_error_slot();
  float* lp = fptr(loss);
  float* ep = fptr(lse);
  const float* xp = fptr(logits);
  const int64_t ls = loss.stride(0), es = lse.stride(0), xs = logits.stride(0);
  if (rows_fit_registers(C, {{xp, xs}})) {
    return launch_register_rows(
        R, C,
        [&](dim3 g, dim3 b) {
          cross_entropy_registers<true><<<g, b, 0, current_stream()>>>(lp, ls, ep, es, xp, xs, t, R, C, ignore_index,
                                                                       smoothing, error);
        },
        [&](dim3 g, dim3 b) {
          cross_entropy_registers<false><<<g, b, 0, current_stream()>>>(lp, ls, ep, es, xp, xs, t, R, C,
                                                                        ignore_index, smoothing, error);
        });
  }
  launch_rows(
      R, C,
      [&](dim3 g, dim3 b) {
        cross_entropy_kernel<true><<<g, b, 0, current_stream()>>>(lp, ls, ep, es, xp, xs, t, R, C, ignore_index,
                                                                  smoothing, error);
      },
      [&](dim3 g, dim3 b) {
        cross_entropy_kernel<false><<<g, b, 0, current_stream()>>>(lp, ls, ep, es, xp, xs, t, R, C, ignore_index,
                                                                   smoothing, error);
      });
}

void CudaBackend::cross_entropy_backward(const Tensor& dlogits, const Tensor& dloss, const Tensor& logits,
                                         const Tensor& lse, const Tensor& target, int64_t ignore_index,
                                         float smoothing) {
  check_f32("cross_entropy_backward", {&dlogits, &dloss, &logits, &lse});
  check_rows("cross_entropy_backward", dlogits);
  check_rows("cross_entropy_backward", logits);
  const int64_t R = logits.size(0), C = logits.size(1);
  if (R == 0 || C == 0) return;
  const IndexView t = index_view("cross_entropy_backward", target);
  dim3 grid(unsigned(std::min<int64_t>((C + kThreads - 1) / kThreads, 64)), unsigned(std::min<int64_t>(R, 65535)));
  cross_entropy_backward_kernel<<<grid, kThreads, 0, current_stream()>>>(
      fptr(dlogits), dlogits.stride(0), fptr(dloss), dloss.stride(0), fptr(logits), logits.stride(0), fptr(lse),
      lse.stride(0), t, R, C, ignore_index, smoothing);
  SN_CUDA_CHECK_LAUNCH();
}

}  // namespace sn
