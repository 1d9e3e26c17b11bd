// kernels/cuda/norm.cu — LayerNorm / RMSNorm over rows [R, D] (D may be the active prefix of a
// wider row), BatchNorm over NCHW channels. Statistics accumulate in double, as on the CPU.
#include <cmath>

#include "kernels/cuda/rows.cuh"

namespace sn {
namespace cuda {
namespace {

template <bool kWarp>
__global__ void layer_norm_kernel(float* y, int64_t ys, float* mean, int64_t ms, float* rstd, int64_t rss,
                                  const float* x, int64_t xs, const float* w, int64_t ws, const float* b,
                                  int64_t bs, int64_t R, int64_t D, float eps, bool rms) {
  __shared__ double shared[32];
  using G = RowGroup<kWarp>;
  const int64_t r = G::row();
  if (r >= R) return;
  const float* xr = x + r * xs;
  float mu = 0.f;
  if (!rms) {
    double s = 0.0;
    for (int64_t i = G::lane(); i < D; i += G::size()) s += xr[i];
    mu = float(G::sum(s, shared) / double(D));
  }
  double ss = 0.0;
  for (int64_t i = G::lane(); i < D; i += G::size()) {
    const double c = double(xr[i] - mu);
    ss += c * c;
  }
  const float rs = 1.f / sqrtf(float(G::sum(ss, shared) / double(D)) + eps);
  if (G::lane() == 0) {
    mean[r * ms] = mu;
    rstd[r * rss] = rs;
  }
  float* yr = y + r * ys;
  for (int64_t i = G::lane(); i < D; i += G::size())
    yr[i] = (xr[i] - mu) * rs * opt_at(w, i, ws, 1.f) + opt_at(b, i, bs, 0.f);
}

// The same with the row held in registers (D % 4 == 0, aligned): x read once, two-pass
// statistics from the registers.
template <bool kWarp>
__global__ void layer_norm_registers(float* y, int64_t ys, float* mean, int64_t ms, float* rstd, int64_t rss,
                                     const float* x, int64_t xs, const float* w, int64_t ws, const float* b,
                                     int64_t bs, int64_t R, int64_t D, float eps, bool rms) {
  __shared__ float shared[32];
  using G = RowGroup<kWarp>;
  const int64_t r = G::row();
  if (r >= R) return;
  float4 v[kRegChunks];
  load_row(v, x + r * xs, D, G::lane(), G::size(), 0.f);
  float mu = 0.f;
  if (!rms) {
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < kRegChunks; ++i) s += (v[i].x + v[i].y) + (v[i].z + v[i].w);  // padding adds 0
    mu = G::sum(s, shared) / float(D);
  }
  float ss = 0.f;
#pragma unroll
  for (int i = 0; i < kRegChunks; ++i) {
    if (!chunk_in_row(i, G::lane(), G::size(), D)) continue;
    const float a = v[i].x - mu, b2 = v[i].y - mu, c = v[i].z - mu, d = v[i].w - mu;
    ss += (a * a + b2 * b2) + (c * c + d * d);
  }
  const float rs = rsqrtf(G::sum(ss, shared) / float(D) + eps);
  if (G::lane() == 0) {
    mean[r * ms] = mu;
    rstd[r * rss] = rs;
  }
  store_row(y + r * ys, v, D, G::lane(), G::size(),
            [=](float a, int64_t i) { return (a - mu) * rs * opt_at(w, i, ws, 1.f) + opt_at(b, i, bs, 0.f); });
}

template <bool kWarp>
__global__ void layer_norm_dx_kernel(float* dx, int64_t dxs, const float* dy, int64_t dys, const float* x,
                                     int64_t xs, const float* mean, int64_t ms, const float* rstd, int64_t rss,
                                     const float* w, int64_t ws, int64_t R, int64_t D, bool rms) {
  __shared__ double shared[32];
  using G = RowGroup<kWarp>;
  const int64_t r = G::row();
  if (r >= R) return;
  const float* xr = x + r * xs;
  const float* gr = dy + r * dys;
  const float mu = mean[r * ms], rs = rstd[r * rss];
  double sg = 0.0, sgx = 0.0;
  for (int64_t i = G::lane(); i < D; i += G::size()) {
    const float g = gr[i] * opt_at(w, i, ws, 1.f);
    sg += g;
    sgx += double(g) * double((xr[i] - mu) * rs);
  }
  sg = G::sum(sg, shared);
  sgx = G::sum(sgx, shared);
  const float mg = rms ? 0.f : float(sg / double(D)), mgx = float(sgx / double(D));
  float* dr = dx + r * dxs;
  for (int64_t i = G::lane(); i < D; i += G::size()) {
    const float g = gr[i] * opt_at(w, i, ws, 1.f);
    dr[i] = rs * (g - mg - (xr[i] - mu) * rs * mgx);
  }
}

// dw/db: partial column sums over a chunk of rows (blockIdx.y), one thread per column.
__global__ void layer_norm_dwdb_partial(double* part_w, double* part_b, const float* dy, int64_t dys,
                                        const float* x, int64_t xs, const float* mean, int64_t ms,
                                        const float* rstd, int64_t rss, int64_t R, int64_t D, int64_t rows_per_chunk) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= D) return;
  const int64_t r0 = blockIdx.y * rows_per_chunk, r1 = min(R, r0 + rows_per_chunk);
  double sw = 0.0, sb = 0.0;
  for (int64_t r = r0; r < r1; ++r) {
    const float g = dy[r * dys + i];
    sw += double(g) * double((x[r * xs + i] - mean[r * ms]) * rstd[r * rss]);
    sb += g;
  }
  part_w[blockIdx.y * D + i] = sw;
  part_b[blockIdx.y * D + i] = sb;
}

__global__ void layer_norm_dwdb_finish(float* dw, int64_t dws, float* db, int64_t dbs, const double* part_w,
                                       const double* part_b, int64_t chunks, int64_t D) {
  SN_GRID_STRIDE(i, D) {
    double sw = 0.0, sb = 0.0;
    for (int64_t c = 0; c < chunks; ++c) {  // chunks in order: the same sum on every run
      sw += part_w[c * D + i];
      sb += part_b[c * D + i];
    }
    if (dw) dw[i * dws] += float(sw);
    if (db) db[i * dbs] += float(sb);
  }
}

// ---- BatchNorm: x [N, C, H, W] with contiguous planes of P = H*W --------------------------

struct Planes {
  float* base;
  int64_t sn, sc;
  __device__ float* at(int64_t n, int64_t c) const { return base + n * sn + c * sc; }
};
Planes planes_of(const Tensor& t) { return {fptr(t), t.stride(0), t.stride(1)}; }

constexpr int kChannelThreads = 512;

__global__ void bn_stats_kernel(float* mean, int64_t ms, float* var, int64_t vs, Planes x, int64_t N, int64_t P) {
  __shared__ double shared[32];
  const int64_t c = blockIdx.x;
  const float shift = x.at(0, c)[0];  // shifted sums keep E[x²] - E[x]² well conditioned
  double s = 0.0, ss = 0.0;
  for (int64_t j = threadIdx.x; j < N * P; j += blockDim.x) {
    const float v = x.at(j / P, c)[j % P] - shift;
    s += v;
    ss += double(v) * v;
  }
  s = block_sum(s, shared);
  ss = block_sum(ss, shared);
  if (threadIdx.x == 0) {
    const double count = double(N * P), m = s / count;
    mean[c * ms] = float(shift + m);
    var[c * vs] = float(fmax(ss / count - m * m, 0.0));
  }
}

__global__ void bn_apply_kernel(Planes y, Planes x, const float* mean, int64_t ms, const float* invstd,
                                int64_t is, const float* w, int64_t ws, const float* b, int64_t bs, int64_t N,
                                int64_t C, int64_t P) {
  SN_GRID_STRIDE(j, N * C * P) {
    const int64_t p = j % P, nc = j / P, c = nc % C, n = nc / C;
    const float scale = opt_at(invstd, c, is, 1.f) * opt_at(w, c, ws, 1.f);
    const float shift = opt_at(b, c, bs, 0.f) - opt_at(mean, c, ms, 0.f) * scale;
    y.at(n, c)[p] = x.at(n, c)[p] * scale + shift;
  }
}

__global__ void bn_backward_kernel(Planes dx, bool has_dx, float* dw, int64_t dws, float* db, int64_t dbs,
                                   Planes dy, Planes x, const float* mean, int64_t ms, const float* invstd,
                                   int64_t is, const float* w, int64_t ws, int64_t N, int64_t P, bool training) {
  __shared__ double shared[32];
  const int64_t c = blockIdx.x;
  const float mu = opt_at(mean, c, ms, 0.f), inv = opt_at(invstd, c, is, 1.f), wc = opt_at(w, c, ws, 1.f);
  double sg = 0.0, sgx = 0.0;
  for (int64_t j = threadIdx.x; j < N * P; j += blockDim.x) {
    const int64_t n = j / P, p = j % P;
    const float g = dy.at(n, c)[p];
    sg += g;
    sgx += double(g) * double((x.at(n, c)[p] - mu) * inv);
  }
  sg = block_sum(sg, shared);
  sgx = block_sum(sgx, shared);
  if (threadIdx.x == 0) {
    if (dw) dw[c * dws] += float(sgx);
    if (db) db[c * dbs] += float(sg);
  }
  if (!has_dx) return;
  const double count = double(N * P);
  const float mg = training ? float(sg / count) : 0.f, mgx = training ? float(sgx / count) : 0.f;
  for (int64_t j = threadIdx.x; j < N * P; j += blockDim.x) {
    const int64_t n = j / P, p = j % P;
    dx.at(n, c)[p] = wc * inv * (dy.at(n, c)[p] - mg - (x.at(n, c)[p] - mu) * inv * mgx);
  }
}

void check_nchw(const char* op, const Tensor& x) {
  SN_CHECK(x.dim() == 4 && (x.size(3) <= 1 || x.stride(3) == 1) &&
               (x.size(2) <= 1 || x.stride(2) == x.size(3)),
           op, "expects NCHW with contiguous planes, got sizes ", shape_str(x.sizes()), " strides ",
           shape_str(x.strides()));
}

void check_rows(const char* op, const Tensor& t) {
  SN_CHECK(t.dim() == 2 && (t.size(1) <= 1 || t.stride(1) == 1), op,
           "expects rows [R, D] with unit inner stride, got sizes ", shape_str(t.sizes()), " strides ",
           shape_str(t.strides()));
}

int64_t stride0(const Tensor& t) { return t.defined() ? t.stride(0) : 0; }

}  // namespace
}  // namespace cuda

using namespace cuda;

void CudaBackend::layer_norm(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                             const Tensor& w, const Tensor& b, float eps, bool rms) {
  check_f32("layer_norm", {&y, &mean, &rstd, &x, &w, &b});
  check_rows("layer_norm", x);
  check_rows("layer_norm", y);
  const int64_t R = x.size(0), D = x.size(1);
  auto args = [&](auto kernel, dim3 g, dim3 bl) {
    kernel<<<g, bl, 0, current_stream()>>>(fptr(y), y.stride(0), fptr(mean), mean.stride(0), fptr(rstd),
                                           rstd.stride(0), fptr(x), x.stride(0), fptr(w), stride0(w), fptr(b),
                                           stride0(b), R, D, eps, rms);
  };
  if (rows_fit_registers(D, {{x.data_ptr(), x.stride(0)}, {y.data_ptr(), y.stride(0)}})) {
    return launch_register_rows(
        R, D, [&](dim3 g, dim3 bl) { args(layer_norm_registers<true>, g, bl); },
        [&](dim3 g, dim3 bl) { args(layer_norm_registers<false>, g, bl); });
  }
  launch_rows(
      R, D, [&](dim3 g, dim3 bl) { args(layer_norm_kernel<true>, g, bl); },
      [&](dim3 g, dim3 bl) { args(layer_norm_kernel<false>, g, bl); });
}

void CudaBackend::layer_norm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy,
                                      const Tensor& x, const Tensor& mean, const Tensor& rstd, const Tensor& w,
                                      bool rms) {
  check_f32("layer_norm_backward", {&dx, &dw, &db, &dy, &x, &mean, &rstd, &w});
  check_rows("layer_norm_backward", x);
  check_rows("layer_norm_backward", dy);
  const int64_t R = x.size(0), D = x.size(1);
  if (R == 0 || D == 0) return;
  if (dx.defined()) {
    check_rows("layer_norm_backward", dx);
    auto args = [&](auto kernel, dim3 g, dim3 bl) {
      kernel<<<g, bl, 0, current_stream()>>>(fptr(dx), dx.stride(0), fptr(dy), dy.stride(0), fptr(x), x.stride(0),
                                             fptr(mean), mean.stride(0), fptr(rstd), rstd.stride(0), fptr(w),
                                             stride0(w), R, D, rms);
    };
    launch_rows(
        R, D, [&](dim3 g, dim3 bl) { args(layer_norm_dx_kernel<true>, g, bl); },
        [&](dim3 g, dim3 bl) { args(layer_norm_dx_kernel<false>, g, bl); });
  }
  if (dw.defined() || db.defined()) {
    const int64_t rows_per_chunk = 64;
    const int64_t chunks = (R + rows_per_chunk - 1) / rows_per_chunk;
    SN_CHECK(chunks <= 65535, "layer_norm_backward", R, " rows exceed the ", 65535 * rows_per_chunk, " supported");
    Storage scratch(size_t(2 * chunks * D) * sizeof(double), x.device());
    double* part_w = static_cast<double*>(scratch.data());
    double* part_b = part_w + chunks * D;
    dim3 grid(unsigned((D + kThreads - 1) / kThreads), unsigned(chunks));
    layer_norm_dwdb_partial<<<grid, kThreads, 0, current_stream()>>>(part_w, part_b, fptr(dy), dy.stride(0),
                                                                    fptr(x), x.stride(0), fptr(mean), mean.stride(0),
                                                                    fptr(rstd), rstd.stride(0), R, D, rows_per_chunk);
    SN_CUDA_CHECK_LAUNCH();
    layer_norm_dwdb_finish<<<blocks_for(D), kThreads, 0, current_stream()>>>(
        fptr(dw), stride0(dw), fptr(db), stride0(db), part_w, part_b, chunks, D);
    SN_CUDA_CHECK_LAUNCH();
  }
}

void CudaBackend::batch_norm_stats(const Tensor& mean, const Tensor& var, const Tensor& x) {
  check_f32("batch_norm_stats", {&mean, &var, &x});
  check_nchw("batch_norm_stats", x);
  const int64_t N = x.size(0), C = x.size(1), P = x.size(2) * x.size(3);
  if (C == 0) return;
  SN_CHECK(N * P > 0, "batch_norm_stats", "needs at least one value per channel, got ", shape_str(x.sizes()));
  bn_stats_kernel<<<unsigned(C), kChannelThreads, 0, current_stream()>>>(fptr(mean), mean.stride(0), fptr(var),
                                                                         var.stride(0), planes_of(x), N, P);
  SN_CUDA_CHECK_LAUNCH();
}

void CudaBackend::batch_norm_apply(const Tensor& y, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                                   const Tensor& w, const Tensor& b) {
  check_f32("batch_norm_apply", {&y, &x, &mean, &invstd, &w, &b});
  check_nchw("batch_norm_apply", x);
  check_nchw("batch_norm_apply", y);
  const int64_t N = x.size(0), C = x.size(1), P = x.size(2) * x.size(3);
  if (N * C * P == 0) return;
  bn_apply_kernel<<<blocks_for(N * C * P), kThreads, 0, current_stream()>>>(
      planes_of(y), planes_of(x), fptr(mean), stride0(mean), fptr(invstd), stride0(invstd), fptr(w), stride0(w),
      fptr(b), stride0(b), N, C, P);
  SN_CUDA_CHECK_LAUNCH();
}

void CudaBackend::batch_norm_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy,
                                      const Tensor& x, const Tensor& mean, const Tensor& invstd, const Tensor& w,
                                      bool training) {
  check_f32("batch_norm_backward", {&dx, &dw, &db, &dy, &x, &mean, &invstd, &w});
  check_nchw("batch_norm_backward", x);
  check_nchw("batch_norm_backward", dy);
  if (dx.defined()) check_nchw("batch_norm_backward", dx);
  const int64_t N = x.size(0), C = x.size(1), P = x.size(2) * x.size(3);
  if (C == 0) return;
  bn_backward_kernel<<<unsigned(C), kChannelThreads, 0, current_stream()>>>(
      dx.defined() ? planes_of(dx) : planes_of(x), dx.defined(), fptr(dw), stride0(dw), fptr(db), stride0(db),
      planes_of(dy), planes_of(x), fptr(mean), stride0(mean), fptr(invstd), stride0(invstd), fptr(w), stride0(w), N,
      P, training);
  SN_CUDA_CHECK_LAUNCH();
}

}  // namespace sn
