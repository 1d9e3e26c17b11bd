// examples/autograd_demo.cpp — SortedNet in miniature with nothing but tensors and autograd:
// one MLP whose hidden width k ∈ {8, 16, 32, 64} selects a nested sub-model (the first k
// neurons of both hidden layers). Each optimizer step samples sub-models (sandwich rule:
// largest, smallest, one random), accumulates their gradients in the shared parameters, and
// takes one SGD step. Then every sub-model is evaluated from the same weights.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/grad_mode.h"

using namespace sn;

namespace {

constexpr int64_t kClasses = 3, kHidden = 64;
const std::vector<int64_t> kWidths = {8, 16, 32, 64};

// Three interleaved spiral arms in 2-D: separable only by a non-linear model.
void make_spirals(int64_t n, Generator& gen, Tensor& x, Tensor& y) {
  std::vector<float> xs(size_t(n * 2));
  std::vector<int64_t> ys(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t c = i % kClasses;
    float r = gen.uniform();
    float angle = 4.f * r + 2.094395f * float(c) + 0.25f * gen.normal();
    xs[size_t(2 * i)] = r * std::cos(angle);
    xs[size_t(2 * i + 1)] = r * std::sin(angle);
    ys[size_t(i)] = c;
  }
  x = from_vector(xs, {n, 2});
  y = from_vector(ys, {n});
}

struct Mlp {
  Tensor w1, b1, w2, b2, w3, b3;

  explicit Mlp(Generator& gen) {
    auto init = [&](Shape s, float fan_in) { return (randn(s, gen) * std::sqrt(2.f / fan_in)).set_requires_grad(); };
    w1 = init({kHidden, 2}, 2.f);
    w2 = init({kHidden, kHidden}, float(kHidden));
    w3 = init({kClasses, kHidden}, float(kHidden));
    b1 = zeros({kHidden}).set_requires_grad();
    b2 = zeros({kHidden}).set_requires_grad();
    b3 = zeros({kClasses}).set_requires_grad();
  }
  std::vector<Tensor*> params() { return {&w1, &b1, &w2, &b2, &w3, &b3}; }

  // The sub-model of width k: every weight is a view (the first k rows/columns), never a copy.
  Tensor forward(const Tensor& x, int64_t k) const {
    Tensor h = relu(linear(x, w1.prefix({k}), b1.narrow(0, 0, k)));
    h = relu(linear(h, w2.prefix({k, k}), b2.narrow(0, 0, k)));
    return linear(h, w3.prefix({-1, k}), b3);
  }
};

float accuracy(const Tensor& logits, const Tensor& y) {
  std::vector<float> l = to_vector<float>(logits);
  std::vector<int64_t> t = to_vector<int64_t>(y);
  int64_t correct = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    size_t best = 0;
    for (size_t c = 1; c < size_t(kClasses); ++c)
      if (l[i * kClasses + c] > l[i * kClasses + best]) best = c;
    correct += int64_t(best) == t[i];
  }
  return float(correct) / float(t.size());
}

}  // namespace

int main(int argc, char** argv) {
  int64_t steps = 1500;
  uint64_t seed = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) steps = std::atoll(argv[++i]);
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: %s [--steps N] [--seed S]\n", argv[0]);
      return a == "--help" ? 0 : 2;
    }
  }
  if (steps <= 0) {
    std::fprintf(stderr, "error: --steps must be positive\n");
    return 2;
  }
  try {
    Generator gen(seed);
    Tensor x_train, y_train, x_test, y_test;
    make_spirals(3000, gen, x_train, y_train);
    make_spirals(900, gen, x_test, y_test);
    Mlp model(gen);
    std::vector<Tensor> velocity;
    for (Tensor* p : model.params()) velocity.push_back(zeros(p->sizes()));

    const int64_t batch = 128;
    const float base_lr = 0.1f;
    auto start = std::chrono::steady_clock::now();
    std::printf("training a width-nested MLP (widths 8/16/32/64), sandwich sampling, %lld steps\n",
                (long long)steps);
    for (int64_t step = 0; step < steps; ++step) {
      int64_t first = int64_t(gen.below(uint64_t(3000 - batch)));
      Tensor xb = x_train.narrow(0, first, batch), yb = y_train.narrow(0, first, batch);
      // Sorted update rule: largest + smallest + one random sub-model, gradients accumulated.
      std::vector<int64_t> widths = {kWidths.back(), kWidths.front(), kWidths[gen.below(kWidths.size())]};
      float loss_sum = 0.f;
      for (int64_t k : widths) {
        Tensor loss = cross_entropy(model.forward(xb, k), yb) * (1.f / float(widths.size()));
        loss.backward();
        loss_sum += loss.item();
      }
      // One SGD step with momentum 0.9 and a cosine learning rate.
      float lr = 0.5f * base_lr * (1.f + std::cos(3.14159265f * float(step) / float(steps)));
      NoGradGuard no_grad;
      auto params = model.params();
      for (size_t i = 0; i < params.size(); ++i) {
        Tensor g = params[i]->grad();
        velocity[i].copy_(velocity[i] * 0.9f + g);
        params[i]->copy_(*params[i] - velocity[i] * lr);
        params[i]->zero_grad();
      }
      if ((step + 1) % (steps / 5 > 0 ? steps / 5 : 1) == 0)
        std::printf("step %5lld  mean sub-model loss %.4f\n", (long long)(step + 1), loss_sum);
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("trained in %.1f s\n\n%-8s %-8s %s\n", seconds, "width", "params", "test accuracy");
    NoGradGuard no_grad;
    for (int64_t k : kWidths) {
      int64_t params = (2 * k + k) + (k * k + k) + (kClasses * k + kClasses);
      std::printf("%-8lld %-8lld %.3f\n", (long long)k, (long long)params,
                  accuracy(model.forward(x_test, k), y_test));
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
