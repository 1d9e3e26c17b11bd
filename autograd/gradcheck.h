// autograd/gradcheck.h — compares backward() with central finite differences.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace sn {

struct GradcheckOptions {
  float eps = 1e-2f;    // finite-difference step (f32 inputs: not smaller)
  double atol = 2e-3;   // |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 2e-2;
  uint64_t seed = 1;    // for the random projection of the output
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0.0;
  std::string message;  // the first mismatch: input, element, both values
};

// Checks d/d(inputs) of L = sum(f(inputs) * R), R a fixed random tensor, element by element,
// for every input that requires grad. Inputs may be large parameters of which f uses only a
// window: elements outside it must then have zero gradient, analytically and numerically.
// L is accumulated in double, so only the rounding of f itself limits the precision.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options = {});

}  // namespace sn
