// kernels/cpu/conv_shifted.cpp — convolution as shifted GEMMs over padded (phase-split) planes
// (see conv_shifted.h).
#include "kernels/cpu/conv_shifted.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/storage.h"
#include "kernels/cpu/conv_direct.h"
#include "kernels/cpu/plane_copy.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/sgemm.h"

namespace sn::cpu {
namespace {

// SN_CONV_ALGORITHM=im2col|shifted|direct|implicit-gemm overrides the automatic choice (comparisons, debugging).
ConvAlgorithm algorithm_from_environment() {
  const char* env = std::getenv("SN_CONV_ALGORITHM");
  if (env && std::string(env) == "im2col") return ConvAlgorithm::im2col;
  if (env && std::string(env) == "shifted") return ConvAlgorithm::shifted;
  if (env && std::string(env) == "direct") return ConvAlgorithm::direct;
  if (env && std::string(env) == "implicit-gemm") return ConvAlgorithm::implicit_gemm;
  return ConvAlgorithm::automatic;
}

std::atomic<ConvAlgorithm> g_algorithm{algorithm_from_environment()};


inline void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                  int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_rowmajor(ta, tb, M, N, K, 1.f, A, lda, B, ldb, beta, C, ldc);
}

// n / d rounded up, for any sign of n (d > 0).
int64_t div_up(int64_t n, int64_t d) { return n >= 0 ? (n + d - 1) / d : -(-n / d); }

// The padded input split into phases (conv_shifted.h); with stride 1, one phase: the padded plane.
struct Phases {
  int64_t Sh, Sw, Hq, Wq;  // strides, and the rows and columns of a phase plane
  explicit Phases(const ShiftedConvShape& s)
      : Sh(s.stride_h), Sw(s.stride_w), Hq(div_up(s.H + 2 * s.pad_h, Sh)), Wq(div_up(s.W + 2 * s.pad_w, Sw)) {}
  int64_t plane() const { return Sh * Sw * Hq * Wq; }  // floats per channel
  // Whether some tap reads phase row a / column b (a 1×3 filter of stride 2 reads two phases of four).
  static bool read(int64_t phase, int64_t K) { return phase < K; }
  // Where padded position (hp, wp) lives among a channel's phases. Tap (kh, kw) reads at(kh, kw)
  // for output 0 and at(kh, kw) + ho·Wq + wo for output (ho, wo).
  int64_t at(int64_t hp, int64_t wp) const { return ((hp % Sh) * Sw + wp % Sw) * Hq * Wq + hp / Sh * Wq + wp / Sw; }
};

// The positions of phase (a, b) that lie inside the input (not in its padding): rows i0 ..
// i0 + rows − 1 and columns j0 .. j0 + cols − 1 of the phase plane.
struct PhaseRange {
  int64_t a, b, i0, rows, j0, cols;
};

PhaseRange phase_range(const ShiftedConvShape& s, const Phases& ph, int64_t a, int64_t b) {
  const int64_t i0 = std::max<int64_t>(0, div_up(s.pad_h - a, ph.Sh)), j0 = std::max<int64_t>(0, div_up(s.pad_w - b, ph.Sw));
  const int64_t i1 = div_up(s.H + s.pad_h - a, ph.Sh), j1 = div_up(s.W + s.pad_w - b, ph.Sw);
  return {a, b, i0, std::max<int64_t>(0, i1 - i0), j0, std::max<int64_t>(0, j1 - j0)};
}

// The filter regrouped by tap, each tap a [Cout, Cin] matrix: taps[t][co][ci] = w[co, ci, kh, kw]
// with t = kh·KW + kw.
Scratch filter_by_tap(const Tensor& w, const ShiftedConvShape& s) {
  const int64_t taps = s.KH * s.KW, ldw = w.stride(0);
  Scratch buffer(taps * s.Cout * s.Cin);
  float* out = buffer.data();
  const float* wp = w.data<float>();
#pragma omp parallel for schedule(static) if (taps * s.Cout * s.Cin >= (1 << 15))
  for (int64_t co = 0; co < s.Cout; ++co)
    for (int64_t ci = 0; ci < s.Cin; ++ci)
      for (int64_t t = 0; t < taps; ++t) out[(t * s.Cout + co) * s.Cin + ci] = wp[co * ldw + ci * taps + t];
  return buffer;
}

// Where each tap reads for output 0.
std::vector<int64_t> tap_offsets(const ShiftedConvShape& s, const Phases& ph) {
  std::vector<int64_t> offsets;
  for (int64_t kh = 0; kh < s.KH; ++kh)
    for (int64_t kw = 0; kw < s.KW; ++kw) offsets.push_back(ph.at(kh, kw));
  return offsets;
}

bool use_direct() {
  const ConvAlgorithm a = conv_algorithm();
  return direct_conv_available() &&
         (a == ConvAlgorithm::direct || a == ConvAlgorithm::implicit_gemm || a == ConvAlgorithm::automatic);
}

// Whether the implicit GEMM (P listed positions) runs instead of the planar kernel (L positions
// with the overhang) for a layer of Cin → Cout channels and ntaps taps.
bool use_gemm(int64_t L, int64_t P, int64_t Cout, int64_t Cin, int64_t ntaps, DirectTile planar, DirectTile gemm) {
  switch (conv_algorithm()) {
    case ConvAlgorithm::implicit_gemm: return true;
    case ConvAlgorithm::automatic:
      return gemm_conv_cost(P, Cout, Cin, ntaps, gemm) < direct_conv_cost(L, Cout, planar);
    default: return false;
  }
}

// The output positions (ho, wo) of a plane of width ld, in order: ho·ld + wo.
std::vector<int64_t> position_bases(int64_t Ho, int64_t Wo, int64_t ld, int64_t first = 0) {
  std::vector<int64_t> bases;
  bases.reserve(size_t(Ho * Wo));
  for (int64_t ho = 0; ho < Ho; ++ho)
    for (int64_t wo = 0; wo < Wo; ++wo) bases.push_back(first + ho * ld + wo);
  return bases;
}

// Channels-last rows out_t[p][c] (row stride ld) to the planes of image dst: dst[c·cs + p].
void from_channels_last(const float* out_t, int64_t ld, int64_t positions, int64_t channels, float* dst, int64_t cs) {
  to_channels_last(out_t, ld, positions, channels, [&](int64_t c) { return dst + c * cs; });
}

// Copies image n of x into the phases of a zero-bordered padded plane set [Cin][phases] (those
// some tap reads). Only the interior is written, so the borders stay zero from one image to the next.
void pad_image(float* xpad, const Tensor& x, int64_t n, const ShiftedConvShape& s, const Phases& ph) {
  const float* base = x.data<float>() + n * x.stride(0);
  for (int64_t c = 0; c < s.Cin; ++c) {
    const float* src = base + c * x.stride(1);
    float* dst = xpad + c * ph.plane();
    if (ph.Sh == 1 && ph.Sw == 1) {
      copy_block(src, s.W, dst + ph.at(s.pad_h, s.pad_w), ph.Wq, s.H, s.W);
      continue;
    }
    for (int64_t b = 0; b < std::min(ph.Sw, s.KW); ++b) {  // input columns w0, w0 + Sw, ... are phase column b
      const int64_t w0 = ((b - s.pad_w) % ph.Sw + ph.Sw) % ph.Sw;
      if (w0 >= s.W) continue;
      const int64_t count = div_up(s.W - w0, ph.Sw);
      for (int64_t h = 0; h < s.H; ++h)
        if (Phases::read((h + s.pad_h) % ph.Sh, s.KH))
          gather_row(src + h * s.W + w0, ph.Sw, dst + ph.at(h + s.pad_h, w0 + s.pad_w), 0, count);
    }
  }
}

// Where each input position (h, w) goes among the phases: at(h + pad_h, w + pad_w), computed once
// per layer rather than per image (the divisions cost more than the copy on narrow layers).
std::vector<int64_t> padded_positions(const ShiftedConvShape& s, const Phases& ph) {
  std::vector<int64_t> at;
  at.reserve(size_t(s.H * s.W));
  for (int64_t h = 0; h < s.H; ++h)
    for (int64_t w = 0; w < s.W; ++w) at.push_back(ph.at(h + s.pad_h, w + s.pad_w));
  return at;
}

// pad_image in channels-last order: x_t[at(h + pad_h, w + pad_w)][c] = x[n, c, h, w], with `at`
// from padded_positions.
void pad_image_channels_last(float* x_t, const Tensor& x, int64_t n, const ShiftedConvShape& s,
                             const std::vector<int64_t>& at) {
  to_channels_last(x.data<float>() + n * x.stride(0), x.stride(1), s.Cin, s.H * s.W,
                   [&](int64_t p) { return x_t + at[size_t(p)] * s.Cin; });
}

// dx[n] at the positions of phase range r, from src (channel stride lc, row stride ld, starting
// at the range's first row and column).
void write_phase(float* dxn, int64_t dx_cs, const float* src, int64_t lc, int64_t ld, const PhaseRange& r,
                 const ShiftedConvShape& s) {
  const int64_t h0 = s.stride_h * r.i0 + r.a - s.pad_h, w0 = s.stride_w * r.j0 + r.b - s.pad_w;
  for (int64_t c = 0; c < s.Cin; ++c)
    for (int64_t i = 0; i < r.rows; ++i)
      scatter_row(src + c * lc + i * ld, s.stride_w, dxn + c * dx_cs + (h0 + s.stride_h * i) * s.W + w0, 0, r.cols);
}

// dx[n] = 0, before the phases are written when some phase is read by no tap (its dx stays 0).
void zero_image(float* dxn, int64_t dx_cs, const ShiftedConvShape& s) {
  for (int64_t c = 0; c < s.Cin; ++c) std::fill(dxn + c * dx_cs, dxn + c * dx_cs + s.H * s.W, 0.f);
}

// The backward-data convolution of one phase on the direct kernel: dx at the phase's positions
// is the forward convolution of dy (zero-padded, in planes of width Wr) with the phase's taps,
// flipped: dxphase[ci][i][j] = Σ_taps Σ_co w[co, ci, kh, kw] · dy[co][i − kh/S_h][j − kw/S_w].
struct PhaseDx {
  PhaseRange range;
  std::vector<int64_t> offsets;  // into dy's padded planes, per tap of this phase
  Scratch packed;                // those taps' filters, [Cin, Cout] each, packed for the kernel
  DirectTile tile{};
  int64_t in = 0, L = 0;  // the base in dy's planes that offsets are added to; positions computed
  bool gemm = false;      // the implicit GEMM over channels-last dy (stride 1 only): bases, packed
  std::vector<int64_t> bases;
};

// dy is stored at (ho + ch, wo + cd) of planes Hr × Wr, with borders wide enough for every
// phase's taps to read zeros outside it.
struct DyPlanes {
  int64_t ch = 0, cd = 0, Hr = 0, Wr = 0;
};

DyPlanes dy_planes_for(const ShiftedConvShape& s, const std::vector<PhaseRange>& ranges) {
  const int64_t qh = (s.KH - 1) / s.stride_h, qw = (s.KW - 1) / s.stride_w;
  DyPlanes p;
  for (const PhaseRange& r : ranges)
    if (r.rows > 0 && r.cols > 0) p.ch = std::max(p.ch, qh - r.i0), p.cd = std::max(p.cd, qw - r.j0);
  p.Hr = p.ch + s.Ho(), p.Wr = p.cd + s.Wo();
  for (const PhaseRange& r : ranges) p.Hr = std::max(p.Hr, r.i0 + r.rows + p.ch), p.Wr = std::max(p.Wr, r.j0 + r.cols + p.cd);
  return p;
}

std::vector<PhaseDx> phase_dx_jobs(const Tensor& w, const ShiftedConvShape& s, const std::vector<PhaseRange>& ranges,
                                   const DyPlanes& dp) {
  const int64_t qh = (s.KH - 1) / s.stride_h, qw = (s.KW - 1) / s.stride_w, ldw = w.stride(0), ntaps = s.KH * s.KW;
  const float* wp = w.data<float>();
  std::vector<PhaseDx> jobs;
  for (const PhaseRange& r : ranges) {
    PhaseDx job;
    job.range = r;
    std::vector<int64_t> taps;
    for (int64_t kh = r.a; kh < s.KH; kh += s.stride_h)
      for (int64_t kw = r.b; kw < s.KW; kw += s.stride_w) {
        taps.push_back(kh * s.KW + kw);
        job.offsets.push_back((qh - kh / s.stride_h) * dp.Wr + (qw - kw / s.stride_w));
      }
    if (!taps.empty() && r.rows > 0 && r.cols > 0) {
      const int64_t n = int64_t(taps.size());
      Scratch flipped(n * s.Cin * s.Cout);  // flipped[t][ci][co] = w[co, ci, tap t]
      for (int64_t t = 0; t < n; ++t)
        for (int64_t ci = 0; ci < s.Cin; ++ci)
          for (int64_t co = 0; co < s.Cout; ++co)
            flipped.data()[(t * s.Cin + ci) * s.Cout + co] = wp[co * ldw + ci * ntaps + taps[size_t(t)]];
      job.L = (r.rows - 1) * dp.Wr + r.cols;
      job.tile = direct_tile_for(job.L, s.Cin);
      job.in = (r.i0 + dp.ch - qh) * dp.Wr + (r.j0 + dp.cd - qw);
      const bool stride1 = s.stride_h == 1 && s.stride_w == 1;  // dx's positions are then its planes, in order
      const DirectTile gemm_tile = gemm_conv_tile_for(r.rows * r.cols, s.Cin);
      if (stride1 && use_gemm(job.L, r.rows * r.cols, s.Cin, s.Cout, n, job.tile, gemm_tile)) {
        job.gemm = true;
        job.tile = gemm_tile;
        job.bases = position_bases(r.rows, r.cols, dp.Wr, job.in);
        job.packed = Scratch(gemm_conv_packed_floats(n, s.Cin, s.Cout, gemm_tile));
        pack_gemm_conv_filter(flipped.data(), n, s.Cin, s.Cout, gemm_tile, job.packed.data());
      } else {
        job.packed = Scratch(n * s.Cin * s.Cout);
        pack_direct_filter(flipped.data(), n, s.Cin, s.Cout, job.tile.mr, job.packed.data());
      }
    } else {
      job.offsets.clear();  // no tap reads this phase, or it has no positions: nothing to write
    }
    jobs.push_back(std::move(job));
  }
  return jobs;
}

}  // namespace

void set_conv_algorithm(ConvAlgorithm algorithm) { g_algorithm.store(algorithm); }
ConvAlgorithm conv_algorithm() { return g_algorithm.load(); }

bool shifted_conv_applies(const Conv2dGeometry& g, int64_t N) {
  const bool shape_ok = g.dilation_h == 1 && g.dilation_w == 1 && g.groups == 1;
  const bool strided = g.stride_h != 1 || g.stride_w != 1;
  switch (conv_algorithm()) {
    case ConvAlgorithm::im2col: return false;
    case ConvAlgorithm::shifted:
    case ConvAlgorithm::direct:
    case ConvAlgorithm::implicit_gemm: return shape_ok;
    case ConvAlgorithm::automatic: break;
  }
  // Images are split across threads, so each thread needs one. The BLAS-per-tap variant loses to
  // one large im2col GEMM on a single thread, and to im2col for strided convolutions; the direct
  // kernel does not.
  const int threads = omp_get_max_threads();
  return shape_ok && N >= threads && ((threads > 1 && !strided) || direct_conv_available());
}

void shifted_conv_forward(const Tensor& y, const Tensor& x, const Tensor& w, const ShiftedConvShape& s) {
  const Phases ph(s);
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Wq = ph.Wq, plane = ph.plane(), ntaps = s.KH * s.KW;
  const int64_t rows = Ho * Wq, L = (Ho - 1) * Wq + Wo;  // the last row needs no overhang
  const Scratch taps = filter_by_tap(w, s);
  const bool direct = use_direct();
  const DirectTile tile = direct ? direct_tile_for(L, s.Cout) : DirectTile{};
  const DirectTile gemm_tile = direct ? gemm_conv_tile_for(Ho * Wo, s.Cout) : DirectTile{};
  const bool gemm = direct && use_gemm(L, Ho * Wo, s.Cout, s.Cin, ntaps, tile, gemm_tile);
  const Scratch packed(!direct ? 0 : gemm ? gemm_conv_packed_floats(ntaps, s.Cout, s.Cin, gemm_tile) : ntaps * s.Cout * s.Cin);
  if (gemm) pack_gemm_conv_filter(taps.data(), ntaps, s.Cout, s.Cin, gemm_tile, packed.data());
  else if (direct) pack_direct_filter(taps.data(), ntaps, s.Cout, s.Cin, tile.mr, packed.data());
  const std::vector<int64_t> offsets = tap_offsets(s, ph);
  const std::vector<int64_t> bases = gemm ? position_bases(Ho, Wo, Wq) : std::vector<int64_t>();
  const std::vector<int64_t> x_at = gemm ? padded_positions(s, ph) : std::vector<int64_t>();
  const int threads = omp_get_max_threads();
  // The padded image (channels last for the implicit GEMM) and the output before its copy to y.
  const ThreadScratch xpads(threads, s.Cin * plane), outs(threads, s.Cout * (gemm ? Ho * Wo : rows));
  const ThreadScratch panels(threads, gemm ? gemm_conv_panel_floats(ntaps, s.Cin, gemm_tile) : 0);
  const int64_t y_ns = y.stride(0), y_cs = y.stride(1);  // read once: the copy loops are hot
#pragma omp parallel
  {
  const int t = omp_get_thread_num();
  xpads.zero(t);  // its borders stay zero: pad_image writes the interior only
#pragma omp for schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    float *xpad = xpads[t], *out = outs[t];
    float* yn = y.data<float>() + n * y_ns;
    if (gemm) {
      pad_image_channels_last(xpad, x, n, s, x_at);
      gemm_conv_image({xpad, s.Cin, bases.data(), Ho * Wo, offsets.data(), ntaps, s.Cout, out, s.Cout, panels[t]},
                      packed.data(), gemm_tile);
      from_channels_last(out, s.Cout, Ho * Wo, s.Cout, yn, y_cs);
      continue;
    }
    pad_image(xpad, x, n, s, ph);
    if (direct) {
      direct_conv_image({xpad, plane, offsets.data(), ntaps, s.Cin, s.Cout, L, out, rows}, packed.data(), tile);
    } else {
      for (int64_t tap = 0; tap < ntaps; ++tap)
        sgemm(false, false, s.Cout, L, s.Cin, taps.data() + tap * s.Cout * s.Cin, s.Cin, xpad + offsets[size_t(tap)],
              plane, tap == 0 ? 0.f : 1.f, out, rows);
    }
    for (int64_t co = 0; co < s.Cout; ++co) copy_block(out + co * rows, Wq, yn + co * y_cs, Wo, Ho, Wo);
  }
  }
}

void shifted_conv_backward(const Tensor& dx, const Tensor& dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                           const ShiftedConvShape& s) {
  const Phases ph(s);
  const int64_t Ho = s.Ho(), Wo = s.Wo(), Wq = ph.Wq, plane = ph.plane();
  const int64_t rows = Ho * Wq, L = (Ho - 1) * Wq + Wo, ntaps = s.KH * s.KW, tap_size = s.Cout * s.Cin;
  std::vector<PhaseRange> ranges;
  for (int64_t a = 0; a < ph.Sh; ++a)
    for (int64_t b = 0; b < ph.Sw; ++b) ranges.push_back(phase_range(s, ph, a, b));
  // With the direct kernel, dx is the forward convolution of padded dy with the flipped filter,
  // once per phase: more images of the same kernel, no transposed GEMMs.
  const bool direct_dx = dx.defined() && use_direct();
  // Along Cin the weight kernel's vectors would be mostly idle below 16 channels; BLAS does better.
  // Its channels-last copy fills every phase, so it also leaves filters that skip phases to BLAS.
  const bool every_phase = s.KH >= s.stride_h && s.KW >= s.stride_w;
  const bool direct_dw = dw.defined() && use_direct() && s.Cin >= 16 && every_phase;
  const DyPlanes dp = direct_dx ? dy_planes_for(s, ranges) : DyPlanes{};
  const int64_t plane_r = dp.Hr * dp.Wr;
  std::vector<PhaseDx> phase_jobs;
  int64_t dx_out_rows = 0;
  bool gemm_dx = false;      // the implicit GEMM over channels-last dy (then dy's planes hold that)
  int64_t panel_floats = 0;  // its panel's scratch
  if (direct_dx) {
    phase_jobs = phase_dx_jobs(w, s, ranges, dp);
    for (const PhaseRange& r : ranges) dx_out_rows = std::max(dx_out_rows, r.rows * dp.Wr);
    for (const PhaseDx& job : phase_jobs)
      if (job.gemm) {
        gemm_dx = true;
        panel_floats = std::max(panel_floats, gemm_conv_panel_floats(int64_t(job.offsets.size()), s.Cout, job.tile));
      }
  }
  const Scratch taps = dx.defined() && !direct_dx ? filter_by_tap(w, s) : Scratch();
  const std::vector<int64_t> offsets = tap_offsets(s, ph);
  const std::vector<int64_t> x_at = direct_dw ? padded_positions(s, ph) : std::vector<int64_t>();
  // Where dy's positions go in its channels-last planes, for the implicit GEMM.
  const std::vector<int64_t> dy_at = gemm_dx ? position_bases(Ho, Wo, dp.Wr, dp.ch * dp.Wr + dp.cd) : std::vector<int64_t>();
  const DirectTile weight_tile = direct_tile_for(s.Cin, s.Cout);
  // The filter gradient and the BLAS backward-data GEMMs read dy in rows of the phase width Wq
  // with zero overhang. When dy's padded planes have that width (e.g. "same" padding, stride 1) that
  // layout is inside them.
  const bool dy_in_plane = direct_dx && !gemm_dx && dp.Wr == Wq;
  const bool dy_rows = !dy_in_plane && (dw.defined() || (dx.defined() && !direct_dx));
  const int64_t dy_ld = dy_in_plane ? plane_r : rows;
  const int threads = omp_get_max_threads();
  const ThreadScratch dy_planes(threads, direct_dx ? s.Cout * plane_r : 0);
  const ThreadScratch dys(threads, dy_rows ? s.Cout * rows : 0);
  // x padded, channels first for the BLAS path, channels last ([position][ci]) for the direct one.
  const ThreadScratch xpads(threads, dw.defined() ? s.Cin * plane : 0);
  const ThreadScratch dxpads(threads, dx.defined() ? s.Cin * (direct_dx ? dx_out_rows : plane) : 0);
  const ThreadScratch dw_parts(threads, dw.defined() ? ntaps * tap_size : 0);
  const ThreadScratch panels(threads, panel_floats);
  const int64_t dy_ns = dy.stride(0), dy_cs = dy.stride(1);  // read once: the copy loops are hot
  const int64_t dx_ns = dx.defined() ? dx.stride(0) : 0, dx_cs = dx.defined() ? dx.stride(1) : 0;
  int team = 1;  // the threads that zeroed (and may have filled) a dw part
#pragma omp parallel
  {
  const int t = omp_get_thread_num();
#pragma omp master
  team = omp_get_num_threads();
  // Borders and overhangs stay zero: the loop below writes interiors only.
  for (const ThreadScratch* buffer : {&dy_planes, &dys, &xpads, &dw_parts}) buffer->zero(t);
#pragma omp for schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    const float* dyn = dy.data<float>() + n * dy_ns;
    float* dy_plane = dy_planes[t];
    if (gemm_dx)
      to_channels_last(dyn, dy_cs, s.Cout, Ho * Wo, [&](int64_t p) { return dy_plane + dy_at[size_t(p)] * s.Cout; });
    else if (direct_dx)
      for (int64_t co = 0; co < s.Cout; ++co)
        copy_block(dyn + co * dy_cs, Wo, dy_plane + co * plane_r + dp.ch * dp.Wr + dp.cd, dp.Wr, Ho, Wo);
    const float* dyp = dy_in_plane ? dy_plane + dp.ch * dp.Wr + dp.cd : dys[t];
    if (dy_rows)
      for (int64_t co = 0; co < s.Cout; ++co) copy_block(dyn + co * dy_cs, Wo, dys[t] + co * rows, Wq, Ho, Wo);
    if (direct_dw) {
      float* x_t = xpads[t];
      pad_image_channels_last(x_t, x, n, s, x_at);
      direct_conv_weight_image({dyp, dy_ld, x_t, offsets.data(), ntaps, s.Cin, s.Cout, L, Wo, Wq, dw_parts[t]},
                               weight_tile);
    } else if (dw.defined()) {  // dW_tap += dy · xpad_shiftedᵀ
      float* xpad = xpads[t];
      pad_image(xpad, x, n, s, ph);
      for (int64_t tap = 0; tap < ntaps; ++tap)
        sgemm(false, true, s.Cout, s.Cin, L, dyp, dy_ld, xpad + offsets[size_t(tap)], plane, 1.f,
              dw_parts[t] + tap * tap_size, s.Cin);
    }
    if (!dx.defined()) continue;
    float* dxn = dx.data<float>() + n * dx_ns;
    float* dxpad = dxpads[t];
    if (!every_phase) zero_image(dxn, dx_cs, s);
    if (direct_dx) {
      for (const PhaseDx& job : phase_jobs) {
        if (job.offsets.empty()) continue;
        if (job.gemm) {  // stride 1: the phase is all of dx, its positions in order
          const int64_t P = int64_t(job.bases.size());
          gemm_conv_image({dy_plane, s.Cout, job.bases.data(), P, job.offsets.data(), int64_t(job.offsets.size()), s.Cin,
                           dxpad, s.Cin, panels[t]},
                          job.packed.data(), job.tile);
          from_channels_last(dxpad, s.Cin, P, s.Cin, dxn, dx_cs);
          continue;
        }
        const int64_t ldo = job.range.rows * dp.Wr;
        direct_conv_image({dy_plane + job.in, plane_r, job.offsets.data(), int64_t(job.offsets.size()), s.Cout, s.Cin,
                           job.L, dxpad, ldo},
                          job.packed.data(), job.tile);
        write_phase(dxn, dx_cs, dxpad, ldo, dp.Wr, job.range, s);
      }
      continue;
    }
    // dxpad_shifted += W_tapᵀ · dy, then each phase's interior goes to dx[n]
    std::fill(dxpad, dxpad + s.Cin * plane, 0.f);
    for (int64_t tap = 0; tap < ntaps; ++tap)
      sgemm(true, false, s.Cin, L, s.Cout, taps.data() + tap * tap_size, s.Cin, dyp, dy_ld, 1.f,
            dxpad + offsets[size_t(tap)], plane);
    for (const PhaseRange& r : ranges)
      if (Phases::read(r.a, s.KH) && Phases::read(r.b, s.KW))
        write_phase(dxn, dx_cs, dxpad + ph.at(ph.Sh * r.i0 + r.a, ph.Sw * r.j0 + r.b), plane, Wq, r, s);
  }
  }
  if (!dw.defined()) return;
  // The per-thread sums, added into the filter gradient's window in thread order (deterministic).
  float* out = dw.data<float>();
  const int64_t ldw = dw.stride(0);
#pragma omp parallel for schedule(static)
  for (int64_t co = 0; co < s.Cout; ++co)
    for (int t = 0; t < team; ++t) {
      const float* part = dw_parts[t];
      for (int64_t ci = 0; ci < s.Cin; ++ci)
        for (int64_t tap = 0; tap < ntaps; ++tap) out[co * ldw + ci * ntaps + tap] += part[tap * tap_size + co * s.Cin + ci];
    }
}

}  // namespace sn::cpu
