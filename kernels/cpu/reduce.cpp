// kernels/cpu/reduce.cpp — sum_to: sums over the dims where the output has size 1.
#include <omp.h>

#include <algorithm>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace sn {

using namespace cpu;

namespace {

// out_b (x's sizes, stride 0 on reduced dims) += x, one thread: rows in a fixed order.
void accumulate_serial(const Tensor& out_b, const Tensor& x) {
  float* o = out_b.data<float>();
  const float* a = x.data<float>();
  for_each_row<2>(x.sizes(), {out_b.strides(), x.strides()}, [&](Offsets<2> off, Offsets<2> st, int64_t n) {
    float* op = o + off[0];
    const float* ap = a + off[1];
    if (st[0] == 0) {
      double s = 0.0;
      for (int64_t i = 0; i < n; ++i) s += ap[i * st[1]];
      *op += float(s);
    } else if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) op[i] += ap[i];
    } else {
      for (int64_t i = 0; i < n; ++i) op[i * st[0]] += ap[i * st[1]];
    }
  });
}

}  // namespace

void CpuBackend::sum_to(const Tensor& out, const Tensor& x, bool accumulate) {
  check_f32("sum_to", {&out, &x});
  SN_CHECK(out.dim() == x.dim(), "sum_to", "ranks differ: ", shape_str(out.sizes()), " vs ",
           shape_str(x.sizes()));
  Shape bstrides = out.strides();
  int64_t kept_dim = -1;  // the kept dim to split across threads: the largest
  for (int64_t d = 0; d < x.dim(); ++d) {
    SN_CHECK(out.size(d) == x.size(d) || out.size(d) == 1, "sum_to", "cannot sum ",
             shape_str(x.sizes()), " to ", shape_str(out.sizes()));
    if (out.size(d) == 1 && x.size(d) != 1) bstrides[d] = 0;
    else if (x.size(d) > 1 && (kept_dim < 0 || x.size(d) > x.size(kept_dim))) kept_dim = d;
  }
  if (!accumulate) fill(out, 0.f);
  if (x.numel() == 0) return;
  Tensor out_b = out.detach().as_strided(x.sizes(), bstrides, out.offset());
  const Tensor xd = x.detach();
  const int threads = omp_get_max_threads();
  const bool parallel = x.numel() >= kParallelGrain && threads > 1;
  if (!parallel) {
    accumulate_serial(out_b, xd);
  } else if (kept_dim >= 0) {
    // Threads own disjoint slices of a kept dim, so no two write the same output.
    int64_t n = x.size(kept_dim);
    int64_t chunks = std::min<int64_t>(n, threads);
    int64_t chunk = (n + chunks - 1) / chunks;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      int64_t begin = c * chunk, len = std::min(n, begin + chunk) - begin;
      if (len > 0) accumulate_serial(out_b.narrow(kept_dim, begin, len), xd.narrow(kept_dim, begin, len));
    }
  } else {
    // A full reduction: per-thread partial sums over slices of the largest dim, added in order.
    int64_t split = 0;
    for (int64_t d = 0; d < x.dim(); ++d)
      if (x.size(d) > x.size(split)) split = d;
    int64_t n = x.size(split);
    int64_t chunks = std::min<int64_t>(n, threads);
    int64_t chunk = (n + chunks - 1) / chunks;
    std::vector<double> partial(size_t(chunks), 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      int64_t begin = c * chunk, len = std::min(n, begin + chunk) - begin;
      if (len <= 0) continue;
      Tensor part = xd.narrow(split, begin, len);
      const float* a = part.data<float>();
      double s = 0.0;
      Shape zero(size_t(part.dim()), 0);
      for_each_row<2>(part.sizes(), {zero, part.strides()}, [&](Offsets<2> off, Offsets<2> st, int64_t m) {
        const float* ap = a + off[1];
        double r = 0.0;
        if (st[1] == 1) {
          for (int64_t i = 0; i < m; ++i) r += ap[i];
        } else {
          for (int64_t i = 0; i < m; ++i) r += ap[i * st[1]];
        }
        s += r;
      });
      partial[size_t(c)] = s;
    }
    double total = 0.0;
    for (double p : partial) total += p;
    *out.data<float>() += float(total);
  }
}

}  // namespace sn
