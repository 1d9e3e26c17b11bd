// kernels/cuda/conv.cu — 2-d convolution by im2col + cuBLAS (the path built without cuDNN).
//
// Columns are laid out [K = Cin/g·KH·KW, images·P] (P = Ho·Wo), so the forward pass is one strided
// batched GEMM per group writing straight into y's planes, dW one GEMM accumulating (beta = 1)
// into the filter's window, and dX one GEMM followed by a gather (col2im, no atomics). The filter
// may be any window of a larger filter: its [Cin/g, KH, KW] block is contiguous per output
// channel, a matrix with leading dimension w.stride(0).
#include <atomic>
#include <cstdlib>
#include <string>

#include "kernels/cuda/conv.h"
#include "kernels/cuda/launch.cuh"

namespace sn {
namespace cuda {
namespace {

struct ConvShape {
  int64_t Cin, H, W, Cout, Cg_in, Cg_out, KH, KW, Ho, Wo;
  int64_t sh, sw, ph, pw, dh, dw;
  int64_t xsn, xsc;  // x's (or dx's) batch and channel strides; planes are contiguous
  int64_t K() const { return Cg_in * KH * KW; }
  int64_t P() const { return Ho * Wo; }
};

// cols[k, j*P + p] = x[n0 + j, c0 + ci, hi, wi] (0 in the padding), k = (ci, kh, kw).
__global__ void im2col_kernel(float* cols, const float* x, ConvShape s, int64_t n0, int64_t nb, int64_t c0) {
  const int64_t P = s.Ho * s.Wo, cols_n = nb * P;
  SN_GRID_STRIDE(e, s.Cg_in * s.KH * s.KW * cols_n) {
    const int64_t col = e % cols_n, k = e / cols_n;
    const int64_t j = col / P, p = col % P, ho = p / s.Wo, wo = p % s.Wo;
    const int64_t kw = k % s.KW, kh = (k / s.KW) % s.KH, ci = k / (s.KW * s.KH);
    const int64_t hi = ho * s.sh - s.ph + kh * s.dh, wi = wo * s.sw - s.pw + kw * s.dw;
    float v = 0.f;
    if (hi >= 0 && hi < s.H && wi >= 0 && wi < s.W) v = x[(n0 + j) * s.xsn + (c0 + ci) * s.xsc + hi * s.W + wi];
    cols[e] = v;
  }
}

// dx[n0 + j, c0 + ci, hi, wi] = sum of the column entries that read it.
__global__ void col2im_kernel(float* dx, const float* dcols, ConvShape s, int64_t n0, int64_t nb, int64_t c0) {
  const int64_t P = s.Ho * s.Wo, cols_n = nb * P;
  SN_GRID_STRIDE(e, nb * s.Cg_in * s.H * s.W) {
    const int64_t wi = e % s.W, hi = (e / s.W) % s.H, ci = (e / (s.W * s.H)) % s.Cg_in, j = e / (s.W * s.H * s.Cg_in);
    float acc = 0.f;
    for (int64_t kh = 0; kh < s.KH; ++kh) {
      const int64_t th = hi + s.ph - kh * s.dh;
      if (th < 0 || th % s.sh != 0) continue;
      const int64_t ho = th / s.sh;
      if (ho >= s.Ho) continue;
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const int64_t tw = wi + s.pw - kw * s.dw;
        if (tw < 0 || tw % s.sw != 0) continue;
        const int64_t wo = tw / s.sw;
        if (wo >= s.Wo) continue;
        const int64_t k = (ci * s.KH + kh) * s.KW + kw;
        acc += dcols[k * cols_n + j * P + ho * s.Wo + wo];
      }
    }
    dx[(n0 + j) * s.xsn + (c0 + ci) * s.xsc + hi * s.W + wi] = acc;
  }
}

bool filter_is_blas_ready(const Tensor& w) {
  return (w.size(3) <= 1 || w.stride(3) == 1) && (w.size(2) <= 1 || w.stride(2) == w.size(3)) &&
         (w.size(1) <= 1 || w.stride(1) == w.size(2) * w.size(3));
}

void check_planes(const char* op, const Tensor& t) {
  SN_CHECK(t.dim() == 4 && (t.size(3) <= 1 || t.stride(3) == 1) && (t.size(2) <= 1 || t.stride(2) == t.size(3)),
           op, "expects NCHW with contiguous planes, got sizes ", shape_str(t.sizes()), " strides ",
           shape_str(t.strides()));
}

ConvShape shape_of(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dGeometry& g) {
  return {x.size(1), x.size(2), x.size(3), w.size(0), w.size(1), w.size(0) / g.groups, w.size(2), w.size(3),
          y.size(2), y.size(3), g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dilation_h, g.dilation_w,
          x.stride(0), x.stride(1)};
}

// Images per chunk: the columns stay under 256 MiB.
int64_t images_per_chunk(const ConvShape& s, int64_t N) {
  const int64_t per_image = std::max<int64_t>(s.K() * s.P() * int64_t(sizeof(float)), 1);
  return std::clamp<int64_t>((int64_t(256) << 20) / per_image, 1, std::max<int64_t>(N, 1));
}

// The filter of group grp as a [Cg_out, K] matrix over the filter's own memory.
Tensor filter_matrix(const Tensor& w, const ConvShape& s, int64_t grp) {
  return w.as_strided({s.Cg_out, s.K()}, {w.stride(0), 1}, w.offset() + grp * s.Cg_out * w.stride(0));
}

void im2col(const Tensor& cols, const Tensor& x, const ConvShape& s, int64_t n0, int64_t nb, int64_t c0) {
  im2col_kernel<<<blocks_for(cols.numel()), kThreads, 0, current_stream()>>>(fptr(cols), fptr(x), s, n0, nb, c0);
  SN_CUDA_CHECK_LAUNCH();
}

std::atomic<bool> g_use_cudnn{[] {
  const char* v = std::getenv("SN_CUDA_CONV");
  return !(v && std::string(v) == "im2col");
}()};

bool use_cudnn() { return cuda_conv_cudnn_built() && g_use_cudnn.load(); }

}  // namespace
}  // namespace cuda

bool cuda_conv_cudnn_built() {
#ifdef SN_WITH_CUDNN
  return true;
#else
  return false;
#endif
}
void set_cuda_conv_cudnn(bool enabled) { cuda::g_use_cudnn.store(enabled); }
bool cuda_conv_cudnn() { return cuda::use_cudnn(); }

using namespace cuda;

void CudaBackend::conv2d(const Tensor& y, const Tensor& x, const Tensor& w_in, const Tensor& b,
                         const Conv2dGeometry& g) {
  check_f32("conv2d", {&y, &x, &w_in, &b});
  check_planes("conv2d", x);
  check_planes("conv2d", y);
  if (x.size(0) == 0 || w_in.size(0) == 0 || y.size(2) * y.size(3) == 0) return;
  if (w_in.size(1) == 0) {  // no input channels: the output is the bias alone
    fill(y, 0.f);
    if (b.defined()) binary(Binary::add, y.detach(), y.detach(), b.detach().as_strided(y.sizes(), {0, b.stride(0), 0, 0}, b.offset()));
    return;
  }
#ifdef SN_WITH_CUDNN
  if (use_cudnn()) {
    conv2d_cudnn(y.detach(), x.detach(), w_in, g);
    if (b.defined()) {
      Tensor bb = b.detach().as_strided(y.sizes(), {0, b.stride(0), 0, 0}, b.offset());
      binary(Binary::add, y.detach(), y.detach(), bb);
    }
    return;
  }
#endif
  const Tensor w = filter_is_blas_ready(w_in) ? w_in.detach() : w_in.contiguous().detach();
  const ConvShape s = shape_of(x, w, y, g);
  const int64_t N = x.size(0), P = s.P(), K = s.K();
  const int64_t chunk = images_per_chunk(s, N);
  Tensor cols_all = scratch_tensor({K, chunk * P}, x.device());
  const Tensor yd = y.detach();
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t nb = std::min(chunk, N - n0);
    Tensor cols = cols_all.as_strided({K, nb * P}, {nb * P, 1}, 0);
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      im2col(cols, x, s, n0, nb, grp * s.Cg_in);
      // Per image j: y[n0+j, group's channels] [Cg_out, P] = W [Cg_out, K] @ cols[:, j*P : (j+1)*P].
      Tensor out = yd.as_strided({nb, s.Cg_out, P}, {y.stride(0), y.stride(1), 1},
                                 y.offset() + n0 * y.stride(0) + grp * s.Cg_out * y.stride(1));
      Tensor wm = filter_matrix(w, s, grp);
      Tensor a = wm.as_strided({nb, s.Cg_out, K}, {0, w.stride(0), 1}, wm.offset());
      Tensor bm = cols.as_strided({nb, K, P}, {P, nb * P, 1}, 0);
      gemm(out, a, bm, 1.f, 0.f);
    }
  }
  if (b.defined()) {  // y += b[c]: a broadcast add over the planes
    Tensor bb = b.detach().as_strided(y.sizes(), {0, b.stride(0), 0, 0}, b.offset());
    binary(Binary::add, yd, yd, bb);
  }
}

void CudaBackend::conv2d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy,
                                  const Tensor& x, const Tensor& w_in, const Conv2dGeometry& g) {
  check_f32("conv2d_backward", {&dx, &dw, &db, &dy, &x, &w_in});
  check_planes("conv2d_backward", x);
  check_planes("conv2d_backward", dy);
  if (dx.defined()) check_planes("conv2d_backward", dx);
  const Tensor w = filter_is_blas_ready(w_in) ? w_in.detach() : w_in.contiguous().detach();
  const ConvShape s = shape_of(x, w, dy, g);
  const int64_t N = x.size(0), P = s.P(), K = s.K();
  if (db.defined()) {  // db[c] += sum over images and positions of dy
    Tensor dbv = db.detach().as_strided({1, s.Cout, 1, 1}, {0, db.stride(0), 0, 0}, db.offset());
    sum_to(dbv, dy.detach(), true);
  }
  if (N == 0 || P == 0 || (!dx.defined() && !dw.defined())) {
    if (dx.defined()) fill(dx, 0.f);
    return;
  }
#ifdef SN_WITH_CUDNN
  if (use_cudnn())  // the first layer's input needs no gradient: dx undefined
    return conv2d_backward_cudnn(dx.defined() ? dx.detach() : Tensor(), dw, dy.detach(), x.detach(), w_in, g, *this);
#endif
  // dW of a window that is not BLAS-shaped accumulates in a packed copy, added back at the end.
  Tensor dwm_all;
  if (dw.defined()) dwm_all = filter_is_blas_ready(dw) ? dw.detach() : scratch_tensor(dw.sizes(), dw.device());
  if (dwm_all.defined() && !filter_is_blas_ready(dw)) fill(dwm_all, 0.f);
  const int64_t chunk = images_per_chunk(s, N);
  Tensor cols_all = scratch_tensor({K, chunk * P}, x.device());
  Tensor dyt_all = scratch_tensor({s.Cg_out, chunk * P}, x.device());
  ConvShape sx = s;
  if (dx.defined()) {
    sx.xsn = dx.stride(0);
    sx.xsc = dx.stride(1);
  }
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t nb = std::min(chunk, N - n0);
    Tensor cols = cols_all.as_strided({K, nb * P}, {nb * P, 1}, 0);
    Tensor dyt = dyt_all.as_strided({s.Cg_out, nb * P}, {nb * P, 1}, 0);
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      // dy of this chunk and group, gathered into [Cg_out, nb·P] (image-major columns).
      Tensor dy_src = dy.detach().as_strided({s.Cg_out, nb, P}, {dy.stride(1), dy.stride(0), 1},
                                             dy.offset() + n0 * dy.stride(0) + grp * s.Cg_out * dy.stride(1));
      copy(dyt.as_strided({s.Cg_out, nb, P}, {nb * P, P, 1}, 0), dy_src);
      if (dwm_all.defined()) {
        im2col(cols, x, s, n0, nb, grp * s.Cg_in);
        Tensor dwm = dwm_all.as_strided({s.Cg_out, K}, {dwm_all.stride(0), 1},
                                        dwm_all.offset() + grp * s.Cg_out * dwm_all.stride(0));
        gemm(dwm, dyt, cols.t(), 1.f, 1.f);
      }
      if (dx.defined()) {
        Tensor wm = filter_matrix(w, s, grp);
        gemm(cols, wm.t(), dyt, 1.f, 0.f);  // dcols [K, nb·P] = W^T dY
        col2im_kernel<<<blocks_for(nb * s.Cg_in * s.H * s.W), kThreads, 0, current_stream()>>>(
            fptr(dx), fptr(cols), sx, n0, nb, grp * s.Cg_in);
        SN_CUDA_CHECK_LAUNCH();
      }
    }
  }
  if (dw.defined() && !filter_is_blas_ready(dw)) axpy(dw.detach(), 1.f, dwm_all);
}

}  // namespace sn
