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

// A channel's N·P values are split over several blocks (a few channels alone would leave most
// of the GPU idle): partial sums per (channel, split) in double, then one thread per channel adds
// its splits in order (deterministic), then elementwise passes use the per-channel results.
constexpr int kSplitThreads = 256;

struct ChannelSplit {
  int64_t splits, chunk;  // blocks per channel, values per block
};
ChannelSplit split_of(int64_t values) {
  const int64_t per_block = int64_t(kSplitThreads) * 16;  // at least 16 values per thread
  const int64_t splits = std::clamp<int64_t>((values + per_block - 1) / per_block, 1, 128);
  return {splits, (values + splits - 1) / splits};
}

// part[(c·S + s)·2 + {0,1}] = sums of (x - shift) and (x - shift)² over split s of channel c.
__global__ void bn_partial_stats(double* part, Planes x, int64_t N, int64_t P, ChannelSplit sp) {
  __shared__ double shared[32];
  const int64_t c = blockIdx.x, s = blockIdx.y;
  const float shift = x.at(0, c)[0];  // shifted sums keep E[x²] - E[x]² well conditioned
  const int64_t end = min(N * P, (s + 1) * sp.chunk);
  double a = 0.0, b = 0.0;
  for (int64_t j = s * sp.chunk + threadIdx.x; j < end; j += blockDim.x) {
    const float v = x.at(j / P, c)[j % P] - shift;
    a += v;
    b += double(v) * v;
  }
  a = block_sum(a, shared);
  b = block_sum(b, shared);
  if (threadIdx.x == 0) {
    part[(c * sp.splits + s) * 2] = a;
    part[(c * sp.splits + s) * 2 + 1] = b;
  }
}

__global__ void bn_finish_stats(float* mean, int64_t ms, float* var, int64_t vs, const double* part, Planes x,
                                int64_t C, int64_t S, double count) {
  SN_GRID_STRIDE(c, C) {
    double a = 0.0, b = 0.0;
    for (int64_t s = 0; s < S; ++s) {
      a += part[(c * S + s) * 2];
      b += part[(c * S + s) * 2 + 1];
    }
    const double m = a / count;
    mean[c * ms] = float(double(x.at(0, c)[0]) + m);
    var[c * vs] = float(fmax(b / count - m * m, 0.0));
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

// part[(c·S + s)·2 + {0,1}] = sums of dy and dy·x̂ over split s of channel c.
__global__ void bn_partial_grads(double* part, Planes dy, Planes x, const float* mean, int64_t ms,
                                 const float* invstd, int64_t is, int64_t N, int64_t P, ChannelSplit sp) {
  __shared__ double shared[32];
  const int64_t c = blockIdx.x, s = blockIdx.y;
  const float mu = opt_at(mean, c, ms, 0.f), inv = opt_at(invstd, c, is, 1.f);
  const int64_t end = min(N * P, (s + 1) * sp.chunk);
  double a = 0.0, b = 0.0;
  for (int64_t j = s * sp.chunk + threadIdx.x; j < end; j += blockDim.x) {
    const int64_t n = j / P, p = j % P;
    const float g = dy.at(n, c)[p];
    a += g;
    b += double(g) * double((x.at(n, c)[p] - mu) * inv);
  }
  a = block_sum(a, shared);
  b = block_sum(b, shared);
  if (threadIdx.x == 0) {
    part[(c * sp.splits + s) * 2] = a;
    part[(c * sp.splits + s) * 2 + 1] = b;
  }
}

// Per channel: dw += sum(dy·x̂), db += sum(dy); coef = the means dx needs (0 in eval mode).
__global__ void bn_finish_grads(float* coef, float* dw, int64_t dws, float* db, int64_t dbs, const double* part,
                                int64_t C, int64_t S, double count, bool training) {
  SN_GRID_STRIDE(c, C) {
    double sg = 0.0, sgx = 0.0;
    for (int64_t s = 0; s < S; ++s) {
      sg += part[(c * S + s) * 2];
      sgx += part[(c * S + s) * 2 + 1];
    }
    if (dw) dw[c * dws] += float(sgx);
    if (db) db[c * dbs] += float(sg);
    coef[2 * c] = training ? float(sg / count) : 0.f;
    coef[2 * c + 1] = training ? float(sgx / count) : 0.f;
  }
}

__global__ void bn_dx_kernel(Planes dx, Planes dy, Planes x, const float* coef, const float* mean, int64_t ms,
                             const float* invstd, int64_t is, const float* w, int64_t ws, int64_t N, int64_t C,
                             int64_t P) {
  SN_GRID_STRIDE(j, N * C * P) {
    const int64_t p = j % P, nc = j / P, c = nc % C, n = nc / C;
    const float mu = opt_at(mean, c, ms, 0.f), inv = opt_at(invstd, c, is, 1.f), wc = opt_at(w, c, ws, 1.f);
    dx.at(n, c)[p] = wc * inv * (dy.at(n, c)[p] - coef[2 * c] - (x.at(n, c)[p] - mu) * inv * coef[2 * c + 1]);
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
    const int64_t rows_per_chunk = std::max<int64_t>(64, (R + 65534) / 65535);  // chunks fit gridDim.y
    const int64_t chunks = (R + rows_per_chunk - 1) / rows_per_chunk;
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
  SN_CHECK(C <= 65535, "batch_norm_stats", C, " channels exceed the 65535 supported");
  const ChannelSplit sp = split_of(N * P);
  Storage part(size_t(C * sp.splits * 2) * sizeof(double), x.device());
  double* pp = static_cast<double*>(part.data());
  bn_partial_stats<<<dim3(unsigned(C), unsigned(sp.splits)), kSplitThreads, 0, current_stream()>>>(pp, planes_of(x),
                                                                                                  N, P, sp);
  SN_CUDA_CHECK_LAUNCH();
  bn_finish_stats<<<blocks_for(C), kThreads, 0, current_stream()>>>(fptr(mean), mean.stride(0), fptr(var),
                                                                   var.stride(0), pp, planes_of(x), C, sp.splits,
                                                                   double(N * P));
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
  if (C == 0 || N * P == 0) return;
  SN_CHECK(C <= 65535, "batch_norm_backward", C, " channels exceed the 65535 supported");
  const ChannelSplit sp = split_of(N * P);
  Storage part(size_t(C * sp.splits * 2) * sizeof(double) + size_t(2 * C) * sizeof(float), x.device());
  double* pp = static_cast<double*>(part.data());
  float* coef = reinterpret_cast<float*>(pp + C * sp.splits * 2);
  bn_partial_grads<<<dim3(unsigned(C), unsigned(sp.splits)), kSplitThreads, 0, current_stream()>>>(
      pp, planes_of(dy), planes_of(x), fptr(mean), stride0(mean), fptr(invstd), stride0(invstd), N, P, sp);
  SN_CUDA_CHECK_LAUNCH();
  bn_finish_grads<<<blocks_for(C), kThreads, 0, current_stream()>>>(coef, fptr(dw), stride0(dw), fptr(db), stride0(db),
                                                                   pp, C, sp.splits, double(N * P), training);
  SN_CUDA_CHECK_LAUNCH();
  if (!dx.defined()) return;
  bn_dx_kernel<<<blocks_for(N * C * P), kThreads, 0, current_stream()>>>(
      planes_of(dx), planes_of(dy), planes_of(x), coef, fptr(mean), stride0(mean), fptr(invstd), stride0(invstd),
      fptr(w), stride0(w), N, C, P);
  SN_CUDA_CHECK_LAUNCH();
}

}  // namespace sn
