// autograd/gradcheck.cpp — finite-difference gradient checking.
#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/ops.h"
#include "core/grad_mode.h"

namespace sn {
namespace {

// Storage offsets of a tensor's elements in row-major order.
std::vector<int64_t> element_offsets(const Tensor& t) {
  std::vector<int64_t> out;
  out.reserve(size_t(t.numel()));
  std::vector<int64_t> index(size_t(t.dim()), 0);
  for (int64_t n = 0; n < t.numel(); ++n) {
    int64_t off = t.offset();
    for (int64_t d = 0; d < t.dim(); ++d) off += index[size_t(d)] * t.stride(d);
    out.push_back(off);
    for (int64_t d = t.dim() - 1; d >= 0; --d) {
      if (++index[size_t(d)] < t.size(d)) break;
      index[size_t(d)] = 0;
    }
  }
  return out;
}

double projected(const Tensor& out, const std::vector<float>& r) {
  std::vector<float> v = to_vector<float>(out);
  double s = 0.0;
  for (size_t i = 0; i < v.size(); ++i) s += double(v[i]) * double(r[i]);
  return s;
}

}  // namespace

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options) {
  GradcheckResult result;
  // Analytic gradients.
  for (const Tensor& t : inputs)
    if (t.requires_grad()) const_cast<Tensor&>(t).zero_grad();
  Tensor out = f(inputs);
  SN_CHECK(out.requires_grad(), "gradcheck", "the function's output does not require grad");
  Generator gen(options.seed);
  Tensor r = randn(out.sizes(), gen);
  std::vector<float> rv = to_vector<float>(r);
  sum(mul(out, r)).backward();

  NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    Tensor g = x.grad();
    std::vector<float> analytic = g.defined() ? to_vector<float>(g) : std::vector<float>(size_t(x.numel()), 0.f);
    std::vector<int64_t> offsets = element_offsets(x);
    float* base = static_cast<float*>(x.storage()->data());
    for (size_t j = 0; j < offsets.size(); ++j) {
      float& v = base[offsets[j]];
      const float saved = v;
      v = saved + options.eps;
      double plus = projected(f(inputs), rv);
      v = saved - options.eps;
      double minus = projected(f(inputs), rv);
      v = saved;
      double numeric = (plus - minus) / (2.0 * double(options.eps));
      double err = std::fabs(double(analytic[j]) - numeric);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (result.ok && err > options.atol + options.rtol * std::fabs(numeric)) {
        result.ok = false;
        std::ostringstream os;
        os << "input " << i << " " << shape_str(x.sizes()) << " element " << j << ": analytic "
           << analytic[j] << " vs numeric " << numeric;
        result.message = os.str();
      }
    }
  }
  return result;
}

}  // namespace sn
