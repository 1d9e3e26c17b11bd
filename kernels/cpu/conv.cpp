// kernels/cpu/conv.cpp — 2-d convolution: im2col + BLAS GEMM (grouped), direct depthwise.
//
// The filter may be any window of a larger filter (the first Cout and Cin/groups channels):
// its [Cin/g, KH, KW] block is contiguous per output channel, so it is a BLAS matrix with
// leading dimension w.stride(0) — no packing. dW is accumulated into that window with beta = 1.
#include <omp.h>

#include <algorithm>

#include "kernels/cpu/conv_shifted.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/cpu/plane_copy.h"
#include "kernels/cpu/sgemm.h"

namespace sn {

using namespace cpu;

namespace {

struct ConvDims {
  int64_t N, Cin, H, W, Cout, Cg_in, Cg_out, KH, KW, Ho, Wo, groups;
  Conv2dGeometry g;
  int64_t K() const { return Cg_in * KH * KW; }
  int64_t P() const { return Ho * Wo; }
};

ConvDims dims_of(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dGeometry& g) {
  ConvDims d{x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(1), 0,
             w.size(2), w.size(3), y.size(2), y.size(3), g.groups, g};
  d.Cg_out = d.Cout / g.groups;
  return d;
}

bool filter_is_blas_ready(const Tensor& w) {
  return (w.size(3) <= 1 || w.stride(3) == 1) && (w.size(2) <= 1 || w.stride(2) == w.size(3)) &&
         (w.size(1) <= 1 || w.stride(1) == w.size(2) * w.size(3));
}

// A packed copy of a filter whose kernel block is not contiguous (e.g. a KH/KW window).
Tensor packed_filter(const Tensor& w) {
  if (filter_is_blas_ready(w)) return w;
  Tensor p = scratch_tensor(w.sizes());
  backend_for(w.device()).copy(p, w);
  return p;
}

// The filter of group grp as a [Cg_out, K] matrix over the filter's own memory.
Tensor filter_matrix(const Tensor& w, const ConvDims& d, int64_t grp) {
  Tensor wg = w.detach().narrow(0, grp * d.Cg_out, d.Cg_out);
  return wg.as_strided({d.Cg_out, d.K()}, {w.stride(0), 1}, wg.offset());
}


inline const float* x_plane(const Tensor& x, int64_t n, int64_t c) {
  return x.data<float>() + n * x.stride(0) + c * x.stride(1);
}

// The planes of an NCHW tensor, with its base pointer and strides read once (hot loops).
struct Planes {
  float* base;
  int64_t sn, sc;
  explicit Planes(const Tensor& t) : base(static_cast<float*>(t.data_ptr())), sn(t.stride(0)), sc(t.stride(1)) {}
  float* operator()(int64_t n, int64_t c) const { return base + n * sn + c * sc; }
};

// Output positions o in [lo, hi) whose input position o*stride + offset lies in [0, in).
inline void valid_range(int64_t out, int64_t in, int64_t stride, int64_t offset, int64_t& lo, int64_t& hi) {
  lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  hi = in - 1 - offset < 0 ? 0 : (in - 1 - offset) / stride + 1;
  lo = std::min(lo, out);
  hi = std::clamp(hi, lo, out);
}

// cols[k = (ci, kh, kw), j*P + p] for images n0..n0+nb of group grp.
void im2col(const Tensor& cols, const Tensor& x, const ConvDims& d, int64_t grp, int64_t n0, int64_t nb) {
  float* c = cols.data<float>();
  const Planes xs(x);
  const int64_t P = d.P(), ld = nb * P, H = d.H, W = d.W, Ho = d.Ho, Wo = d.Wo;
  const int64_t stride_h = d.g.stride_h, stride_w = d.g.stride_w, pad_h = d.g.pad_h;
  parallel_for(d.K(), ld, [&](int64_t k) {
    const int64_t ci = k / (d.KH * d.KW), kh = (k / d.KW) % d.KH, kw = k % d.KW;
    const int64_t woff = kw * d.g.dilation_w - d.g.pad_w, hoff = kh * d.g.dilation_h - pad_h;
    int64_t lo, hi;
    valid_range(Wo, W, stride_w, woff, lo, hi);
    float* row = c + k * ld;
    for (int64_t j = 0; j < nb; ++j) {
      const float* xp = xs(n0 + j, grp * d.Cg_in + ci);
      for (int64_t ho = 0; ho < Ho; ++ho) {
        float* out = row + j * P + ho * Wo;
        const int64_t h_in = ho * stride_h + hoff;
        if (h_in < 0 || h_in >= H) {
          std::fill(out, out + Wo, 0.f);
          continue;
        }
        std::fill(out, out + lo, 0.f);
        gather_row(xp + h_in * W + woff, stride_w, out, lo, hi);  // input column wo·stride + woff
        std::fill(out + hi, out + Wo, 0.f);
      }
    }
  });
}

// dx[n, grp*Cg_in + ci] += the columns that read it. Threads own input channels.
void col2im(const Tensor& dx, const Tensor& cols, const ConvDims& d, int64_t grp, int64_t n0, int64_t nb) {
  const float* c = cols.data<float>();
  const Planes dxs(dx);
  const int64_t P = d.P(), ld = nb * P, H = d.H, W = d.W, Ho = d.Ho, Wo = d.Wo;
  const int64_t stride_h = d.g.stride_h, stride_w = d.g.stride_w;
  parallel_for(d.Cg_in, d.KH * d.KW * ld, [&](int64_t ci) {
    for (int64_t kh = 0; kh < d.KH; ++kh)
      for (int64_t kw = 0; kw < d.KW; ++kw) {
        const int64_t woff = kw * d.g.dilation_w - d.g.pad_w, hoff = kh * d.g.dilation_h - d.g.pad_h;
        int64_t lo, hi;
        valid_range(Wo, W, stride_w, woff, lo, hi);
        const float* row = c + ((ci * d.KH + kh) * d.KW + kw) * ld;
        for (int64_t j = 0; j < nb; ++j) {
          float* xp = dxs(n0 + j, grp * d.Cg_in + ci);
          for (int64_t ho = 0; ho < Ho; ++ho) {
            const int64_t h_in = ho * stride_h + hoff;
            if (h_in < 0 || h_in >= H) continue;
            scatter_row</*kAdd=*/true>(row + j * P + ho * Wo, stride_w, xp + h_in * W + woff, lo, hi);
          }
        }
      }
  });
}

// Images per im2col chunk: keeps the column buffer near 8M floats.
int64_t chunk_images(const ConvDims& d) {
  int64_t per = std::max<int64_t>(1, d.K() * d.P());
  return std::clamp<int64_t>((int64_t(8) << 20) / per, 1, d.N);
}

bool is_depthwise(const ConvDims& d) {
  return d.groups > 1 && d.groups == d.Cin && d.Cg_in == 1 && d.Cg_out == 1;
}

void check_conv(const Tensor& y, const Tensor& x, const Tensor& w) {
  for (const Tensor* t : {&x, &y})
    SN_CHECK(t->dim() == 4 && (t->size(3) <= 1 || t->stride(3) == 1) &&
                 (t->size(2) <= 1 || t->stride(2) == t->size(3)),
             "conv2d", "expects NCHW with contiguous planes, got sizes ", shape_str(t->sizes()),
             " strides ", shape_str(t->strides()));
  SN_CHECK(w.dim() == 4 && (w.size(3) <= 1 || w.stride(3) == 1), "conv2d",
           "filter needs a unit inner stride, got strides ", shape_str(w.strides()));
}

// ---- depthwise: one filter per channel, direct loops ---------------------------------------
template <bool kBackwardInput>
void depthwise_pass(const Tensor& out, const Tensor& in, const Tensor& w, const ConvDims& d) {
  // Forward: out = y, in = x. Backward-input: out = dx, in = dy (scatter instead of gather).
  parallel_for(d.N * d.Cin, d.P() * d.KH * d.KW, [&](int64_t nc) {
    int64_t n = nc / d.Cin, c = nc % d.Cin;
    const float* wc = w.data<float>() + c * w.stride(0);
    const float* src = x_plane(in, n, c);
    float* dst = const_cast<float*>(x_plane(out, n, c));
    for (int64_t ho = 0; ho < d.Ho; ++ho)
      for (int64_t kh = 0; kh < d.KH; ++kh) {
        int64_t hi = ho * d.g.stride_h - d.g.pad_h + kh * d.g.dilation_h;
        if (hi < 0 || hi >= d.H) continue;
        for (int64_t kw = 0; kw < d.KW; ++kw) {
          float wv = wc[kh * w.stride(2) + kw * w.stride(3)];
          for (int64_t wo = 0; wo < d.Wo; ++wo) {
            int64_t wi = wo * d.g.stride_w - d.g.pad_w + kw * d.g.dilation_w;
            if (wi < 0 || wi >= d.W) continue;
            if constexpr (kBackwardInput) dst[hi * d.W + wi] += wv * src[ho * d.Wo + wo];
            else dst[ho * d.Wo + wo] += wv * src[hi * d.W + wi];
          }
        }
      }
  });
}

void depthwise_filter_grad(const Tensor& dw, const Tensor& dy, const Tensor& x, const ConvDims& d) {
  parallel_for(d.Cin, d.N * d.P() * d.KH * d.KW, [&](int64_t c) {
    float* wc = dw.data<float>() + c * dw.stride(0);
    for (int64_t kh = 0; kh < d.KH; ++kh)
      for (int64_t kw = 0; kw < d.KW; ++kw) {
        double s = 0.0;
        for (int64_t n = 0; n < d.N; ++n) {
          const float* xp = x_plane(x, n, c);
          const float* gp = x_plane(dy, n, c);
          for (int64_t ho = 0; ho < d.Ho; ++ho) {
            int64_t hi = ho * d.g.stride_h - d.g.pad_h + kh * d.g.dilation_h;
            if (hi < 0 || hi >= d.H) continue;
            for (int64_t wo = 0; wo < d.Wo; ++wo) {
              int64_t wi = wo * d.g.stride_w - d.g.pad_w + kw * d.g.dilation_w;
              if (wi >= 0 && wi < d.W) s += double(gp[ho * d.Wo + wo]) * xp[hi * d.W + wi];
            }
          }
        }
        wc[kh * dw.stride(2) + kw * dw.stride(3)] += float(s);
      }
  });
}

// ---- batch-parallel path: images split across threads, one single-threaded GEMM each ----
// Each thread's column buffer (K × Ho·Wo floats) stays in its core's cache, and the GEMM writes
// straight into the output planes, so no scatter copy is needed. Used when there are at least as
// many images as threads; the GEMM (OpenBLAS or our own) runs single-threaded inside the parallel
// region.

// C[M,N] (row stride ldc) = alpha · op(A) · op(B) + beta · C.
inline void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_rowmajor(ta, tb, M, N, K, 1.f, A, lda, B, ldb, beta, C, ldc);
}

bool per_image(const ConvDims& d) {
  const int threads = omp_get_max_threads();
  return threads > 1 && d.N >= threads;
}

// Convolutions with a real kernel (KH·KW > 1) skip im2col: shifted GEMMs over a padded (for a
// stride, phase-split) copy of each image (conv_shifted.h). 1×1 convolutions need no im2col
// expansion (with a stride, a gather of one phase), and one GEMM per image beats the direct kernel
// on them (bench_conv, the down1x1 layers).
bool use_shifted(const ConvDims& d) {
  return d.KH * d.KW > 1 && d.H + 2 * d.g.pad_h >= d.KH && d.W + 2 * d.g.pad_w >= d.KW && shifted_conv_applies(d.g, d.N);
}

ShiftedConvShape shifted_shape(const ConvDims& d) {
  return {d.N, d.Cin, d.H, d.W, d.Cout, d.KH, d.KW, d.g.pad_h, d.g.pad_w, d.g.stride_h, d.g.stride_w};
}

void forward_per_image(const Tensor& y, const Tensor& x, const Tensor& w, const ConvDims& d) {
  const int threads = omp_get_max_threads();
  const int64_t K = d.K(), P = d.P();
  std::vector<Tensor> cols;
  for (int t = 0; t < threads; ++t) cols.push_back(scratch_tensor({K, P}));
  const Planes ys(y);
  const float* wp = w.data<float>();
  const int64_t ldw = w.stride(0);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < d.N; ++n) {
    const Tensor& c = cols[size_t(omp_get_thread_num())];
    for (int64_t grp = 0; grp < d.groups; ++grp) {
      im2col(c, x, d, grp, n, 1);
      sgemm(false, false, d.Cg_out, P, K, wp + grp * d.Cg_out * ldw, ldw, c.data<float>(), P, 0.f,
            ys(n, grp * d.Cg_out), ys.sc);
    }
  }
}

void backward_per_image(const Tensor& dx, const Tensor& dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                        const ConvDims& d) {
  const int threads = omp_get_max_threads();
  const int64_t K = d.K(), P = d.P(), per_group = d.Cg_out * K;
  std::vector<Tensor> cols, dcols, dw_part;
  for (int t = 0; t < threads; ++t) {
    cols.push_back(scratch_tensor({K, P}));
    if (dx.defined()) dcols.push_back(scratch_tensor({K, P}));
    if (dw.defined()) {
      dw_part.push_back(scratch_tensor({d.groups * per_group}));
      std::fill(dw_part.back().data<float>(), dw_part.back().data<float>() + d.groups * per_group, 0.f);
    }
  }
  const Planes dys(dy);
  const float* wp = w.data<float>();
  const int64_t ldw = w.stride(0);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < d.N; ++n) {
    const int t = omp_get_thread_num();
    for (int64_t grp = 0; grp < d.groups; ++grp) {
      const float* g = dys(n, grp * d.Cg_out);  // [Cg_out, P], row stride dys.sc
      if (dw.defined()) {  // this thread's dW += dy_n · cols_nᵀ
        im2col(cols[size_t(t)], x, d, grp, n, 1);
        sgemm(false, true, d.Cg_out, K, P, g, dys.sc, cols[size_t(t)].data<float>(), P, 1.f,
              dw_part[size_t(t)].data<float>() + grp * per_group, K);
      }
      if (dx.defined()) {  // dcols = Wᵀ · dy_n, folded back into dx[n]
        sgemm(true, false, K, P, d.Cg_out, wp + grp * d.Cg_out * ldw, ldw, g, dys.sc, 0.f,
              dcols[size_t(t)].data<float>(), P);
        col2im(dx, dcols[size_t(t)], d, grp, n, 1);
      }
    }
  }
  if (!dw.defined()) return;
  // The partial sums, added into the filter gradient's window in thread order (deterministic).
  for (int64_t grp = 0; grp < d.groups; ++grp) {
    Tensor dwm = filter_matrix(dw, d, grp);
    float* out = dwm.data<float>();
    const int64_t ld = dwm.stride(0);
    for (int t = 0; t < threads; ++t) {
      const float* part = dw_part[size_t(t)].data<float>() + grp * per_group;
      for (int64_t r = 0; r < d.Cg_out; ++r)
        for (int64_t k = 0; k < K; ++k) out[r * ld + k] += part[r * K + k];
    }
  }
}

}  // namespace

void CpuBackend::conv2d(const Tensor& y, const Tensor& x, const Tensor& w_in, const Tensor& b,
                        const Conv2dGeometry& g) {
  check_f32("conv2d", {&y, &x, &w_in, &b});
  check_conv(y, x, w_in);
  ConvDims d = dims_of(x, w_in, y, g);
  if (is_depthwise(d)) {
    fill(y, 0.f);
    depthwise_pass<false>(y, x, w_in, d);
  } else {
    // A filter whose kernel block is not contiguous (a window in KH/KW) is packed once.
    Tensor w = packed_filter(w_in);
    if (use_shifted(d)) {
      shifted_conv_forward(y, x, w, shifted_shape(d));
    } else if (per_image(d)) {
      forward_per_image(y, x, w, d);
    } else {
    const int64_t nb_max = chunk_images(d), P = d.P();
    Tensor cols_buf = scratch_tensor({d.K(), nb_max * P});
    Tensor out_buf = scratch_tensor({d.Cg_out, nb_max * P});
    for (int64_t grp = 0; grp < d.groups; ++grp) {
      Tensor wm = filter_matrix(w, d, grp);
      for (int64_t n0 = 0; n0 < d.N; n0 += nb_max) {
        int64_t nb = std::min(nb_max, d.N - n0);
        Tensor cols = cols_buf.narrow(1, 0, nb * P).as_strided({d.K(), nb * P}, {nb * P, 1}, 0);
        Tensor out = out_buf.as_strided({d.Cg_out, nb * P}, {nb * P, 1}, 0);
        im2col(cols, x, d, grp, n0, nb);
        gemm(out, wm, cols, 1.f, 0.f);
        const float* o = out.data<float>();
        parallel_for(nb * d.Cg_out, P, [&](int64_t jc) {
          int64_t j = jc / d.Cg_out, co = jc % d.Cg_out;
          float* yp = const_cast<float*>(x_plane(y, n0 + j, grp * d.Cg_out + co));
          std::copy(o + co * nb * P + j * P, o + co * nb * P + (j + 1) * P, yp);
        });
      }
    }
    }
  }
  if (b.defined()) {
    parallel_for(d.N * d.Cout, d.P(), [&](int64_t nc) {
      int64_t n = nc / d.Cout, c = nc % d.Cout;
      float bv = b.data<float>()[c * b.stride(0)];
      float* yp = const_cast<float*>(x_plane(y, n, c));
      for (int64_t i = 0; i < d.P(); ++i) yp[i] += bv;
    });
  }
}

void CpuBackend::conv2d_backward(const Tensor& dx, const Tensor& dw, const Tensor& db,
                                 const Tensor& dy, const Tensor& x, const Tensor& w_in,
                                 const Conv2dGeometry& g) {
  check_f32("conv2d_backward", {&dx, &dw, &db, &dy, &x, &w_in});
  check_conv(dy, x, w_in);
  ConvDims d = dims_of(x, w_in, dy, g);
  if (db.defined()) {
    parallel_for(d.Cout, d.N * d.P(), [&](int64_t c) {
      double s = 0.0;
      for (int64_t n = 0; n < d.N; ++n) {
        const float* gp = x_plane(dy, n, c);
        for (int64_t i = 0; i < d.P(); ++i) s += gp[i];
      }
      db.data<float>()[c * db.stride(0)] += float(s);
    });
  }
  if (is_depthwise(d)) {
    if (dx.defined()) {
      fill(dx, 0.f);
      depthwise_pass<true>(dx, dy, w_in, d);
    }
    if (dw.defined()) depthwise_filter_grad(dw, dy, x, d);
    return;
  }
  Tensor w = packed_filter(w_in);
  SN_CHECK(!dw.defined() || filter_is_blas_ready(dw), "conv2d_backward",
           "filter gradient window needs a contiguous kernel block, strides ", shape_str(dw.strides()));
  // The shifted planes write every element of dx; the other paths accumulate into it.
  if (use_shifted(d)) return shifted_conv_backward(dx, dw, dy, x, w, shifted_shape(d));
  if (dx.defined()) fill(dx, 0.f);
  if (per_image(d)) return backward_per_image(dx, dw, dy, x, w, d);
  const int64_t nb_max = chunk_images(d), P = d.P();
  Tensor cols_buf = scratch_tensor({d.K(), nb_max * P});
  Tensor dcols_buf = dx.defined() ? scratch_tensor({d.K(), nb_max * P}) : Tensor();
  Tensor dy_buf = scratch_tensor({d.Cg_out, nb_max * P});
  for (int64_t grp = 0; grp < d.groups; ++grp) {
    Tensor wm = filter_matrix(w, d, grp);
    Tensor dwm = dw.defined() ? filter_matrix(dw, d, grp) : Tensor();
    for (int64_t n0 = 0; n0 < d.N; n0 += nb_max) {
      int64_t nb = std::min(nb_max, d.N - n0);
      Shape mat{d.K(), nb * P}, mat_st{nb * P, 1};
      Tensor dyt = dy_buf.as_strided({d.Cg_out, nb * P}, {nb * P, 1}, 0);
      float* t = dyt.data<float>();
      parallel_for(nb * d.Cg_out, P, [&](int64_t jc) {  // gather dy into [Cg_out, nb*P]
        int64_t j = jc / d.Cg_out, co = jc % d.Cg_out;
        const float* gp = x_plane(dy, n0 + j, grp * d.Cg_out + co);
        std::copy(gp, gp + P, t + co * nb * P + j * P);
      });
      if (dw.defined()) {
        Tensor cols = cols_buf.as_strided(mat, mat_st, 0);
        im2col(cols, x, d, grp, n0, nb);
        gemm(dwm, dyt, cols.t(), 1.f, 1.f);
      }
      if (dx.defined()) {
        Tensor dcols = dcols_buf.as_strided(mat, mat_st, 0);
        gemm(dcols, wm.t(), dyt, 1.f, 0.f);
        col2im(dx, dcols, d, grp, n0, nb);
      }
    }
  }
}

}  // namespace sn
