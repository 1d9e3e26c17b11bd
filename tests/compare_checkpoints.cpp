// tests/compare_checkpoints.cpp — how far apart the parameters of two checkpoints are.
//   compare_checkpoints A B TOLERANCE
// For every model tensor: the relative difference ‖a − b‖₂ / ‖b‖₂, and max|a − b| / max|b|.
// Prints the largest of each; exits 1 when the largest relative L2 difference exceeds TOLERANCE
// (2 on bad input).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "autograd/ops.h"
#include "train/safetensors.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: compare_checkpoints A B TOLERANCE\n");
    return 2;
  }
  try {
    sn::SafetensorsFile a = sn::load_safetensors(argv[1]), b = sn::load_safetensors(argv[2]);
    double worst = 0, worst_max = 0, worst_abs = 0;
    std::string worst_name;
    int compared = 0;
    for (auto& [name, ta] : a.tensors) {
      if (name.rfind("model.", 0) != 0 || ta.dtype() != sn::DType::f32) continue;
      auto it = b.tensors.find(name);
      SN_CHECK(it != b.tensors.end() && it->second.sizes() == ta.sizes(), "compare", "'", name, "' differs in shape");
      std::vector<float> va = sn::to_vector<float>(ta), vb = sn::to_vector<float>(it->second);
      double diff = 0, scale = 0, d2 = 0, b2 = 0;
      for (size_t i = 0; i < va.size(); ++i) {
        const double d = double(va[i]) - double(vb[i]);
        diff = std::max(diff, std::fabs(d));
        scale = std::max(scale, double(std::fabs(vb[i])));
        d2 += d * d;
        b2 += double(vb[i]) * double(vb[i]);
      }
      const double rel = b2 > 0 ? std::sqrt(d2 / b2) : std::sqrt(d2);
      worst_max = std::max(worst_max, scale > 0 ? diff / scale : diff);
      worst_abs = std::max(worst_abs, diff);
      if (rel >= worst) worst = rel, worst_name = name;
      ++compared;
    }
    std::printf("%d model tensors: largest ||a-b||/||b|| %.3g (%s); largest max|a-b|/max|b| %.3g, max|a-b| %.3g\n",
                compared, worst, worst_name.c_str(), worst_max, worst_abs);
    return worst <= std::atof(argv[3]) ? 0 : 1;
  } catch (const sn::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
