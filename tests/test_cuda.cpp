// tests/test_cuda.cpp — every CUDA kernel against the CPU reference (label `cuda`), through the
// autograd ops users call: forward outputs and input gradients, on contiguous tensors and on
// nested windows of larger parameters, on fresh random inputs. Every test skips with a visible
// message where no GPU is present.
//
// Tolerances (relative L2 error against the CPU): fp32 kernels 2e-5 (reductions in a different
// order); GEMM-based ops run with TF32 off for parity (TF32 itself is checked at 5e-3, bf16
// autocast at 2e-2).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "core/grad_mode.h"
#include "kernels/cuda/cuda_backend.h"
#include "models/decoding.h"
#include "models/llama.h"
#include "models/model.h"
#include "test_util.h"
#include "train/optimizer.h"

namespace sn {
namespace {

using testing::random_tensor;

constexpr double kF32 = 2e-5;

class Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device present: CUDA test skipped";
    set_cuda_tf32(false);
  }
  void TearDown() override {
    set_cuda_tf32(true);
    set_cuda_bf16(false);
  }
};

Tensor gpu(const Tensor& t) { return t.to(Device::cuda()); }

double rel_l2(const Tensor& actual, const Tensor& expected) {
  std::vector<float> a = to_vector<float>(actual.to(Device::cpu()).contiguous());
  std::vector<float> e = to_vector<float>(expected.contiguous());
  EXPECT_EQ(a.size(), e.size());
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < std::min(a.size(), e.size()); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += double(a[i] - e[i]) * double(a[i] - e[i]);
    den += double(e[i]) * double(e[i]);
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs f on CPU leaves and on their GPU copies; compares the outputs and, after backward of a
// random projection of the output, the gradient of every f32 input.
void expect_parity(const std::vector<Tensor>& inputs, const Fn& f, double tol, const std::string& what,
                   bool check_grads = true) {
  std::vector<Tensor> on_cpu, on_gpu;
  for (const Tensor& t : inputs) {
    Tensor c = t.clone();
    Tensor g = gpu(t).detach();
    if (t.dtype() == DType::f32 && check_grads) {
      c.set_requires_grad(true);
      g.set_requires_grad(true);
    }
    on_cpu.push_back(c);
    on_gpu.push_back(g);
  }
  Tensor out_c = f(on_cpu), out_g = f(on_gpu);
  ASSERT_TRUE(out_g.device().is_cuda()) << what;
  ASSERT_EQ(out_c.sizes(), out_g.sizes()) << what;
  EXPECT_LT(rel_l2(out_g, out_c), tol) << what << ": forward";
  if (!check_grads) return;
  Tensor r = random_tensor(out_c.sizes(), 977);
  sum(out_c * r).backward();
  sum(out_g * gpu(r)).backward();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!on_cpu[i].requires_grad() || !on_cpu[i].grad().defined()) continue;
    ASSERT_TRUE(on_gpu[i].grad().defined()) << what << ": input " << i << " has no GPU gradient";
    EXPECT_LT(rel_l2(on_gpu[i].grad(), on_cpu[i].grad()), tol) << what << ": gradient of input " << i;
  }
}

TEST_F(Cuda, RoundTripAndFill) {
  Tensor x = random_tensor({17, 33}, 1);
  Tensor d = gpu(x);
  EXPECT_TRUE(d.device().is_cuda());
  EXPECT_EQ(to_vector<float>(d), to_vector<float>(x));
  Tensor z = full({5, 7}, 2.5f, DType::f32, Device::cuda());
  EXPECT_EQ(to_vector<float>(z), std::vector<float>(35, 2.5f));
}

TEST_F(Cuda, StridedCopyOfANestedWindowMatchesTheCpu) {
  Tensor x = random_tensor({9, 12}, 2);
  Tensor d = gpu(x);
  EXPECT_EQ(to_vector<float>(d.prefix({5, 7}).t().contiguous()), to_vector<float>(x.prefix({5, 7}).t().contiguous()));
}

TEST_F(Cuda, GradientFlowsBackThroughTransfers) {
  Tensor x = testing::leaf(random_tensor({4, 3}, 3));
  Tensor y = gpu(x).to(Device::cpu());
  sum(y * 2.f).backward();
  EXPECT_EQ(to_vector<float>(x.grad()), std::vector<float>(12, 2.f));
}

TEST_F(Cuda, RandomFillsDrawTheSameStreamAsTheCpu) {
  Generator a(42, 7), b(42, 7);
  Tensor u_cpu = rand({1001}, a), u_gpu = rand({1001}, b, Device::cuda());
  EXPECT_EQ(to_vector<float>(u_gpu), to_vector<float>(u_cpu));
  Tensor n_cpu = randn({999}, a), n_gpu = randn({999}, b, Device::cuda());
  EXPECT_LT(rel_l2(n_gpu, n_cpu), 1e-6);
  Tensor x = random_tensor({33, 17}, 4);
  Generator c(5), d(5);
  EXPECT_EQ(to_vector<float>(dropout(gpu(x), 0.3f, d)), to_vector<float>(dropout(x, 0.3f, c)));
}

TEST_F(Cuda, UnaryOpsAndTheirGradients) {
  const Unary ops[] = {Unary::neg,  Unary::exp,  Unary::log,     Unary::sqrt,    Unary::abs,   Unary::relu,
                       Unary::gelu, Unary::gelu_tanh, Unary::silu, Unary::tanh, Unary::sigmoid, Unary::square};
  for (Unary op : ops) {
    const bool positive = op == Unary::log || op == Unary::sqrt;
    Tensor x = random_tensor({37, 29}, 10 + int(op));
    if (positive) x = abs(x) + 0.1f;
    expect_parity({x}, [op](const std::vector<Tensor>& in) { return unary(op, in[0]); }, kF32, unary_name(op));
    // A transposed window: the strided path.
    expect_parity({x}, [op](const std::vector<Tensor>& in) { return unary(op, in[0].prefix({20, 11}).t()); }, kF32,
                  std::string(unary_name(op)) + " on a transposed window");
  }
  // 16-byte vector path: a dense size divisible by 4.
  expect_parity({random_tensor({256, 64}, 5)}, [](const std::vector<Tensor>& in) { return relu(in[0]); }, kF32,
                "relu vectorised");
  // Rows of a window with row strides a multiple of 4: the 16-byte row path.
  expect_parity({random_tensor({33, 72}, 6), random_tensor({33, 40}, 7)},
                [](const std::vector<Tensor>& in) { return gelu(in[0].prefix({33, 40})) * in[1]; }, kF32,
                "gelu and mul on a window, vectorised rows");
}

TEST_F(Cuda, BinaryOpsWithBroadcastingAndWindows) {
  Tensor a = random_tensor({4, 1, 6}, 20), b = random_tensor({5, 6}, 21), big = random_tensor({9, 13}, 22);
  expect_parity({a, b}, [](const std::vector<Tensor>& in) { return in[0] + in[1]; }, kF32, "add broadcast");
  expect_parity({a, b}, [](const std::vector<Tensor>& in) { return in[0] - in[1]; }, kF32, "sub broadcast");
  expect_parity({a, b}, [](const std::vector<Tensor>& in) { return in[0] * in[1]; }, kF32, "mul broadcast");
  expect_parity({a, abs(b) + 0.5f}, [](const std::vector<Tensor>& in) { return in[0] / in[1]; }, kF32, "div");
  expect_parity({big, b}, [](const std::vector<Tensor>& in) { return in[0].prefix({5, 6}) * in[1] + 0.5f; }, kF32,
                "mul on a window");
  expect_parity({b}, [](const std::vector<Tensor>& in) { return affine(in[0], -1.5f, 2.f); }, kF32, "affine");
}

TEST_F(Cuda, Reductions) {
  Tensor x = random_tensor({6, 50, 7, 9}, 30);
  expect_parity({x}, [](const std::vector<Tensor>& in) { return sum(in[0]); }, kF32, "sum all");
  expect_parity({x}, [](const std::vector<Tensor>& in) { return sum(in[0], {0, 2, 3}); }, kF32, "sum per channel");
  expect_parity({x}, [](const std::vector<Tensor>& in) { return sum(in[0], {1}); }, kF32, "sum middle dim");
  expect_parity({x}, [](const std::vector<Tensor>& in) { return mean(in[0], {3}, true); }, kF32, "mean last dim");
  Tensor big = random_tensor({3000, 700}, 31);
  expect_parity({big}, [](const std::vector<Tensor>& in) { return sum(in[0].prefix({2500, 600}), {0}); }, kF32,
                "bias-gradient shape on a window");
  expect_parity({big}, [](const std::vector<Tensor>& in) { return sum(in[0], {1}); }, kF32, "row sums");
}

TEST_F(Cuda, MatmulOnNestedWindowsAccumulatesIntoTheWindow) {
  Tensor x = random_tensor({33, 48}, 40), w = random_tensor({70, 64}, 41), b = random_tensor({70}, 42);
  expect_parity({x, w, b},
                [](const std::vector<Tensor>& in) {
                  return linear(in[0].prefix({33, 40}), in[1].prefix({50, 40}), in[2].prefix({50}));
                },
                kF32, "linear on windows");
  Tensor a = random_tensor({4, 17, 23}, 43), c = random_tensor({4, 23, 9}, 44);
  expect_parity({a, c}, [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, kF32, "batched matmul");
  expect_parity({a, c}, [](const std::vector<Tensor>& in) { return matmul(in[1].transpose(1, 2), in[0].transpose(1, 2)); },
                kF32, "batched matmul of transposed views");
  // The same window read twice accumulates twice (beta = 1 into one gradient buffer).
  expect_parity({x, w},
                [](const std::vector<Tensor>& in) {
                  Tensor wv = in[1].prefix({20, 48});
                  return linear(relu(linear(in[0], wv)), in[1].prefix({20, 20}));
                },
                kF32, "two windows of one parameter");
}

TEST_F(Cuda, Tf32MatmulStaysWithinItsPrecision) {
  set_cuda_tf32(true);
  Tensor a = random_tensor({256, 512}, 45), b = random_tensor({512, 128}, 46);
  expect_parity({a, b}, [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, 5e-3, "tf32 matmul");
}

TEST_F(Cuda, SoftmaxShortAndLongRowsOnWindows) {
  for (int64_t C : {10, 1000, 3000}) {
    Tensor x = random_tensor({37, C + 5}, 50 + C, 3.f);
    const std::string tag = " C=" + std::to_string(C);
    expect_parity({x}, [C](const std::vector<Tensor>& in) { return softmax(in[0].prefix({37, C})); }, kF32,
                  "softmax" + tag);
    expect_parity({x}, [C](const std::vector<Tensor>& in) { return log_softmax(in[0].prefix({37, C})); }, kF32,
                  "log_softmax" + tag);
    // Rows 16-byte aligned with C % 4 == 0: held in registers.
    Tensor dense = random_tensor({37, C}, 51 + C, 3.f);
    expect_parity({dense}, [](const std::vector<Tensor>& in) { return softmax(in[0]); }, kF32, "dense softmax" + tag);
    expect_parity({dense}, [](const std::vector<Tensor>& in) { return log_softmax(in[0]); }, kF32,
                  "dense log_softmax" + tag);
  }
}

TEST_F(Cuda, CrossEntropyWithSmoothingAndIgnoredRows) {
  for (int64_t C : {10, 1000, 5000}) {
    Tensor logits = random_tensor({64, C}, 60 + C, 2.f);
    std::vector<int64_t> t(64);
    for (int64_t i = 0; i < 64; ++i) t[size_t(i)] = i % 7 == 3 ? -100 : (i * 37) % C;
    Tensor target = from_vector(t, {64});
    const std::string tag = " C=" + std::to_string(C);
    expect_parity({logits, target}, [](const std::vector<Tensor>& in) { return cross_entropy(in[0], in[1]); }, kF32,
                  "cross_entropy" + tag);
    expect_parity({logits, target},
                  [](const std::vector<Tensor>& in) {
                    return cross_entropy(in[0], in[1], Reduction::none, -100, 0.1f);
                  },
                  kF32, "cross_entropy smoothed" + tag);
  }
}

TEST_F(Cuda, ABadTargetIsAClearError) {
  Tensor logits = gpu(random_tensor({4, 5}, 70));
  Tensor target = gpu(from_vector(std::vector<int64_t>{0, 1, 9, 2}, {4}));
  try {
    cross_entropy(logits, target, Reduction::none).to(Device::cpu());  // reported at the next sync
    FAIL() << "expected an error for target 9 of 5 classes";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target 9 at position 2 outside [0, 5)"), std::string::npos) << e.what();
  }
}

TEST_F(Cuda, LayerNormAndRmsNormOverTheActivePrefix) {
  for (int64_t D : {48, 2048}) {
    Tensor x = random_tensor({40, D}, 80 + D), w = random_tensor({D + 16}, 81), b = random_tensor({D + 16}, 82);
    const int64_t d = D - 8;
    const std::string tag = " D=" + std::to_string(d);
    expect_parity({x, w, b},
                  [d](const std::vector<Tensor>& in) {
                    return layer_norm(in[0].prefix({40, d}), in[1].prefix({d}), in[2].prefix({d}));
                  },
                  kF32, "layer_norm" + tag);
    expect_parity({x, w},
                  [d](const std::vector<Tensor>& in) { return rms_norm(in[0].prefix({40, d}), in[1].prefix({d})); },
                  kF32, "rms_norm" + tag);
  }
}

TEST_F(Cuda, BatchNormTrainingAndEval) {
  Tensor x = random_tensor({8, 12, 9, 9}, 90, 2.f), w = random_tensor({16}, 91), b = random_tensor({16}, 92);
  for (bool training : {true, false}) {
    Tensor rm_c = random_tensor({16}, 93) * 0.1f, rv_c = abs(random_tensor({16}, 94)) + 0.5f;
    Tensor rm_g = gpu(rm_c), rv_g = gpu(rv_c);
    expect_parity({x, w, b},
                  [&](const std::vector<Tensor>& in) {
                    const bool on_gpu = in[0].device().is_cuda();
                    Tensor rm = (on_gpu ? rm_g : rm_c).prefix({12}), rv = (on_gpu ? rv_g : rv_c).prefix({12});
                    return batch_norm(in[0], in[1].prefix({12}), in[2].prefix({12}), rm, rv, training);
                  },
                  kF32, training ? "batch_norm training" : "batch_norm eval");
    EXPECT_LT(rel_l2(rm_g, rm_c), kF32) << "running mean";
    EXPECT_LT(rel_l2(rv_g, rv_c), kF32) << "running var";
  }
}

TEST_F(Cuda, BatchNormReluWithResidual) {
  Tensor x = random_tensor({8, 12, 9, 9}, 95, 2.f), r = random_tensor({8, 12, 9, 9}, 96);
  Tensor w = random_tensor({16}, 97), b = random_tensor({16}, 98);
  for (bool residual : {false, true})
    expect_parity({x, w, b, r},
                  [&](const std::vector<Tensor>& in) {
                    return batch_norm_relu(in[0], in[1].prefix({12}), in[2].prefix({12}), Tensor(), Tensor(), true,
                                           0.1f, 1e-5f, residual ? in[3] : Tensor());
                  },
                  kF32, residual ? "batch_norm_relu residual" : "batch_norm_relu");
}

TEST_F(Cuda, Conv2dOnFilterWindows) {
  struct Case {
    const char* name;
    Conv2dGeometry g;
    int64_t cin, cout, k;
  };
  Conv2dGeometry s1;
  s1.pad_h = s1.pad_w = 1;
  Conv2dGeometry s2 = s1;
  s2.stride_h = s2.stride_w = 2;
  Conv2dGeometry grouped = s1;
  grouped.groups = 2;
  Conv2dGeometry dilated = s1;
  dilated.dilation_h = dilated.dilation_w = 2;
  dilated.pad_h = dilated.pad_w = 2;
  Conv2dGeometry pointwise;
  std::vector<bool> algorithms{false};  // im2col + cuBLAS, and cuDNN where built
  if (cuda_conv_cudnn_built()) algorithms.push_back(true);
  for (bool cudnn : algorithms)
  for (const Case& c : {Case{"3x3 stride 1", s1, 6, 10, 3}, Case{"3x3 stride 2", s2, 6, 10, 3},
                        Case{"grouped", grouped, 6, 10, 3}, Case{"dilated", dilated, 6, 10, 3},
                        Case{"1x1", pointwise, 6, 10, 1}}) {
    set_cuda_conv_cudnn(cudnn);
    Tensor x = random_tensor({5, 8, 11, 11}, 100), w = random_tensor({14, 8, c.k, c.k}, 101), b = random_tensor({14}, 102);
    const int64_t cin_g = c.cin / c.g.groups;
    Conv2dGeometry g = c.g;
    expect_parity({x, w, b},
                  [&](const std::vector<Tensor>& in) {
                    return conv2d(in[0].narrow(1, 0, c.cin), in[1].prefix({c.cout, cin_g, c.k, c.k}),
                                  in[2].prefix({c.cout}), g);
                  },
                  kF32, std::string(c.name) + (cudnn ? " (cuDNN)" : " (im2col)"));
    // An input that needs no gradient (a first layer): dW and db only.
    expect_parity({x, w, b},
                  [&](const std::vector<Tensor>& in) {
                    return conv2d(in[0].detach().narrow(1, 0, c.cin), in[1].prefix({c.cout, cin_g, c.k, c.k}),
                                  in[2].prefix({c.cout}), g);
                  },
                  kF32, std::string(c.name) + " without dx" + (cudnn ? " (cuDNN)" : " (im2col)"));
    // The whole filter too: cuDNN then accumulates dW in place.
    expect_parity({x.narrow(1, 0, c.cin), w.narrow(0, 0, c.cout).narrow(1, 0, cin_g).contiguous()},
                  [&](const std::vector<Tensor>& in) { return conv2d(in[0], in[1], Tensor(), g); }, kF32,
                  std::string(c.name) + " whole filter" + (cudnn ? " (cuDNN)" : " (im2col)"));
  }
  set_cuda_conv_cudnn(true);
}

TEST_F(Cuda, Pooling) {
  Tensor x = random_tensor({4, 6, 12, 12}, 110);
  Pool2dGeometry two;  // 2x2 stride 2
  Pool2dGeometry three{3, 3, 2, 2, 1, 1};
  expect_parity({x}, [&](const std::vector<Tensor>& in) { return max_pool2d(in[0], two); }, kF32, "max_pool 2x2");
  expect_parity({x}, [&](const std::vector<Tensor>& in) { return max_pool2d(in[0], three); }, kF32,
                "max_pool 3x3 s2 p1");
  expect_parity({x}, [&](const std::vector<Tensor>& in) { return avg_pool2d(in[0], three); }, kF32,
                "avg_pool 3x3 s2 p1");
  expect_parity({x}, [](const std::vector<Tensor>& in) { return global_avg_pool2d(in[0].narrow(1, 0, 4)); }, kF32,
                "global average pool of a channel window");
}

TEST_F(Cuda, EmbeddingWithRepeatedIndicesOnAWindow) {
  Tensor table = random_tensor({50, 40}, 120);
  Tensor index = from_vector(std::vector<int64_t>{3, 7, 3, 0, 29, 7, 7, 12}, {8});
  expect_parity({index, table}, [](const std::vector<Tensor>& in) { return embedding(in[0], in[1].prefix({30, 24})); },
                kF32, "embedding");
}

TEST_F(Cuda, OptimizerStepsOnWindows) {
  Backend& cpu = backend_for(Device::cpu());
  Backend& dev = backend_for(Device::cuda());
  Tensor p = random_tensor({20, 30}, 130), g = random_tensor({20, 30}, 131), m = random_tensor({20, 30}, 132),
         v = abs(random_tensor({20, 30}, 133));
  Tensor pg = gpu(p), gg = gpu(g), mg = gpu(m), vg = gpu(v);
  auto win = [](const Tensor& t) { return t.detach().prefix({12, 17}); };
  cpu.sgd_step(win(p), win(g), win(m), 0.1f, 0.9f, 5e-4f, true);
  dev.sgd_step(win(pg), win(gg), win(mg), 0.1f, 0.9f, 5e-4f, true);
  EXPECT_LT(rel_l2(pg, p), 1e-6) << "sgd parameters";
  EXPECT_LT(rel_l2(mg, m), 1e-6) << "sgd momentum";
  cpu.adamw_step(win(p), win(g), win(m), win(v), 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.1f, 0.01f);
  dev.adamw_step(win(pg), win(gg), win(mg), win(vg), 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.1f, 0.01f);
  EXPECT_LT(rel_l2(pg, p), 1e-6) << "adamw parameters";
  EXPECT_LT(rel_l2(vg, v), 1e-6) << "adamw second moment";
}

// One forward and backward of a sub-model on the GPU and on the CPU from the same parameters:
// the logits, then every parameter's gradient (listed in registration order, so the first
// mismatch names the layer), with each convolution path.
TEST_F(Cuda, SubModelForwardAndGradientsMatchTheCpu) {
  for (const char* name : {"fmnist-mlp", "fmnist-resnet"}) {
    for (bool cudnn : {false, true}) {
      if (cudnn && !cuda_conv_cudnn_built()) continue;
      set_cuda_conv_cudnn(cudnn);
      auto on_cpu = make_model({name, BnStats::per_submodel, 3});
      auto on_gpu = make_model({name, BnStats::per_submodel, 3});
      on_gpu->to(Device::cuda());
      Tensor x = random_tensor({16, 1, 28, 28}, 141);
      std::vector<int64_t> labels(16);
      for (size_t i = 0; i < labels.size(); ++i) labels[i] = int64_t(i * 3 % 10);
      Tensor y = from_vector(labels, {16});
      const SubModelSpace& space = on_cpu->space();
      for (int64_t index : {space.size() - 1, int64_t(0), space.size() / 2}) {
        const SubModel sub = space.at(index);
        const std::string tag = std::string(name) + " " + sub.str() + (cudnn ? " cuDNN" : " im2col");
        Tensor lc = on_cpu->forward(x, {sub, index, nullptr});
        Tensor lg = on_gpu->forward(gpu(x), {sub, index, nullptr});
        EXPECT_LT(rel_l2(lg, lc), 1e-4) << tag << ": logits";
        cross_entropy(lc, y).backward();
        cross_entropy(lg, gpu(y)).backward();
        auto pc = on_cpu->named_parameters(), pg = on_gpu->named_parameters();
        std::string report;
        bool ok = true;
        for (size_t i = 0; i < pc.size(); ++i) {
          Tensor gc = pc[i].second->tensor.grad(), gg = pg[i].second->tensor.grad();
          if (!gc.defined()) continue;
          const double e = gg.defined() ? rel_l2(gg, gc) : INFINITY;
          ok = ok && e < 1e-4;
          report += "  " + pc[i].first + " " + std::to_string(e) + "\n";
        }
        EXPECT_TRUE(ok) << tag << ": gradient relative errors\n" << report;
        on_cpu->zero_grad();
        on_gpu->zero_grad();
      }
    }
  }
  set_cuda_conv_cudnn(true);
}

// A model moved to the GPU trains like its CPU twin: three sorted steps (two sub-models each,
// windows accumulated, SGD with momentum) leave the same parameters and BatchNorm statistics.
// Rounding differences grow through three steps of a BatchNorm network on a batch of 16 (cuDNN's
// filter gradients add with atomics, in no fixed order): on an H200 single elements of the
// ResNet's state drifted by up to 2e-2 while the state as a whole stayed within 1e-3. So the
// state is compared as a whole, relative L2 over every tensor together: 1e-4 for the MLP, 5e-3
// for the ResNet. Each step's gradients are held to 1e-4 by SubModelForwardAndGradientsMatchTheCpu.
TEST_F(Cuda, ModelsTrainOnTheGpuLikeOnTheCpu) {
  for (const char* name : {"fmnist-mlp", "fmnist-resnet"}) {
    auto on_cpu = make_model({name, BnStats::per_submodel, 3});
    auto on_gpu = make_model({name, BnStats::per_submodel, 3});
    on_gpu->to(Device::cuda());
    ASSERT_TRUE(on_gpu->device().is_cuda());
    OptimizerConfig oc;
    oc.weight_decay = 5e-4f;
    Optimizer opt_c(*on_cpu, oc), opt_g(*on_gpu, oc);
    Tensor x = random_tensor({16, 1, 28, 28}, 140);
    std::vector<int64_t> labels(16);
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = int64_t(i * 3 % 10);
    Tensor y = from_vector(labels, {16});
    Tensor xg = gpu(x), yg = gpu(y);
    const SubModelSpace& space = on_cpu->space();
    for (int step = 0; step < 3; ++step) {
      std::vector<Shape> windows;
      for (auto& [n, p] : on_cpu->named_parameters()) windows.push_back(Shape(p->tensor.dim(), 0));
      for (int64_t index : {space.size() - 1, int64_t(step)}) {
        const SubModel sub = space.at(index);
        cross_entropy(on_cpu->forward(x, {sub, index, nullptr}), y).backward();
        cross_entropy(on_gpu->forward(xg, {sub, index, nullptr}), yg).backward();
        size_t i = 0;
        for (auto& [n, p] : on_cpu->named_parameters()) {
          Shape a = p->active_shape(sub);
          for (size_t d = 0; d < a.size(); ++d) windows[i][d] = std::max(windows[i][d], a[d]);
          ++i;
        }
      }
      opt_c.step(0.05f, windows);
      opt_g.step(0.05f, windows);
      opt_c.zero_grad(windows);
      opt_g.zero_grad(windows);
    }
    auto pc = on_cpu->state_dict(), pg = on_gpu->state_dict();
    double num = 0.0, den = 0.0;
    for (auto& [key, t] : pc) {
      ASSERT_TRUE(pg.count(key)) << key;
      EXPECT_TRUE(pg[key].device().is_cuda()) << key;
      std::vector<float> c = to_vector<float>(t.contiguous()), g = to_vector<float>(pg[key].to(Device::cpu()).contiguous());
      ASSERT_EQ(c.size(), g.size()) << key;
      for (size_t i = 0; i < c.size(); ++i) {
        ASSERT_TRUE(std::isfinite(g[i])) << name << " " << key << " element " << i;
        num += double(c[i] - g[i]) * double(c[i] - g[i]);
        den += double(c[i]) * double(c[i]);
      }
    }
    EXPECT_LT(std::sqrt(num / den), std::string(name) == "fmnist-mlp" ? 1e-4 : 5e-3) << name << ": whole state";
  }
}

}  // namespace
}  // namespace sn

namespace sn {
namespace {

// B sequences of T input tokens (token i of the batch = i·step mod vocab) and their next tokens.
std::pair<Tensor, Tensor> next_token_batch(int64_t B, int64_t T, int64_t step, int64_t vocab) {
  std::vector<int64_t> t(static_cast<size_t>(B * (T + 1)));
  for (size_t i = 0; i < t.size(); ++i) t[i] = int64_t(i) * step % vocab;
  Tensor tokens = from_vector(t, {B, T + 1});
  return {tokens.narrow(1, 0, T).contiguous(), tokens.narrow(1, 1, T).contiguous()};
}

// The transformers on the GPU: W3's encoder (sub-models of every axis) and a small sorted
// decoder (SoFT gradients, grouped key/value heads, cached decoding) against their CPU twins.
TEST_F(Cuda, TransformersMatchTheCpu) {
  auto vit_c = make_model({"fmnist-vit", BnStats::per_submodel, 5});
  auto vit_g = make_model({"fmnist-vit", BnStats::per_submodel, 5});
  vit_g->to(Device::cuda());
  Tensor x = random_tensor({4, 1, 28, 28}, 150);
  const SubModelSpace& space = vit_c->space();
  for (int64_t index : {space.size() - 1, int64_t(0), space.size() / 3}) {
    const SubModel sub = space.at(index);
    Tensor lc = vit_c->forward(x, {sub, index, nullptr}), lg = vit_g->forward(gpu(x), {sub, index, nullptr});
    EXPECT_LT(rel_l2(lg, lc), 1e-4) << "fmnist-vit " << sub.str();
  }

  for (int64_t kv_heads : {0, 1}) {
    LlamaConfig c;
    c.vocab = 32;
    c.dim = 16;
    c.layers = 4;
    c.heads = 2;
    c.kv_heads = kv_heads;
    c.head_dim = 8;
    c.ffn = 24;
    c.context = 32;
    c.exits = {1, 2, 3, 4};
    SortedLlama on_cpu(c, 6), on_gpu(c, 6);
    on_gpu.to(Device::cuda());
    auto [in, target] = next_token_batch(2, 11, 7, 32);
    Tensor loss_c = soft_loss(on_cpu, in, target), loss_g = soft_loss(on_gpu, gpu(in), gpu(target));
    EXPECT_NEAR(loss_g.item(), loss_c.item(), 1e-4 * std::abs(loss_c.item())) << "SoFT loss";
    loss_c.backward();
    loss_g.backward();
    auto pc = on_cpu.named_parameters(), pg = on_gpu.named_parameters();
    for (size_t i = 0; i < pc.size(); ++i)
      EXPECT_LT(rel_l2(pg[i].second->tensor.grad(), pc[i].second->tensor.grad()), 1e-4) << pc[i].first;

    // Cached decoding: the logits of every step agree; speculative decoding on the GPU gives the
    // GPU's own greedy output.
    NoGradGuard no_grad;
    std::vector<KvCache> cc(4), cg(4);
    Tensor hc = on_cpu.run_blocks(on_cpu.embed(in.narrow(0, 0, 1).contiguous()), 0, 4, cc);
    Tensor hg = on_gpu.run_blocks(on_gpu.embed(gpu(in.narrow(0, 0, 1).contiguous())), 0, 4, cg);
    EXPECT_LT(rel_l2(on_gpu.exit_logits(hg), on_cpu.exit_logits(hc)), 1e-4) << "prefill logits";
    for (int64_t token : {5, 9, 31}) {
      const Tensor one = from_vector(std::vector<int64_t>{token}, {1, 1});
      Tensor step_c = on_cpu.exit_logits(on_cpu.run_blocks(on_cpu.embed(one), 0, 4, cc));
      Tensor step_g = on_gpu.exit_logits(on_gpu.run_blocks(on_gpu.embed(gpu(one)), 0, 4, cg));
      EXPECT_LT(rel_l2(step_g, step_c), 1e-4) << "cached step after " << token;
    }
    const std::vector<int64_t> prompt{3, 1, 4, 1, 5};
    SpeculativeOptions o;
    o.draft_exit = 1;
    EXPECT_EQ(speculative_decode(on_gpu, prompt, 20, o), greedy_decode(on_gpu, prompt, 20, 4));
  }
}

}  // namespace
}  // namespace sn

namespace sn {
namespace {

// bf16 autocast: the products of a nested weight window (forward, dX, dW accumulated into the
// fp32 window) within bf16's precision of the CPU's fp32, and measurably not the fp32 result.
TEST_F(Cuda, Bf16AutocastMatmulOnWindowsStaysWithinItsPrecision) {
  Tensor w = random_tensor({64, 64}, 160), x = random_tensor({32, 40}, 161);
  auto f = [](const std::vector<Tensor>& in) { return matmul(in[1], in[0].narrow(0, 0, 48).narrow(1, 0, 40).t()); };
  set_matmul_precision(MatmulPrecision::bf16);
  EXPECT_EQ(matmul_precision(), MatmulPrecision::bf16);
  expect_parity({w, x}, f, 2e-2, "bf16 autocast x·W[:48, :40]ᵀ");
  Tensor y16 = f({gpu(w), gpu(x)});
  set_matmul_precision(MatmulPrecision::fp32);
  Tensor y32 = f({gpu(w), gpu(x)});
  EXPECT_GT(rel_l2(y16, y32.to(Device::cpu())), 1e-5) << "the bf16 setting changed nothing";
}

// The language model's SoFT step under bf16 autocast stays close to the fp32 CPU step.
TEST_F(Cuda, Bf16AutocastLanguageModelStepMatchesFp32) {
  LlamaConfig c;
  c.vocab = 32;
  c.dim = 32;
  c.layers = 2;
  c.heads = 2;
  c.head_dim = 16;
  c.ffn = 48;
  c.context = 16;
  c.exits = {1, 2};
  SortedLlama on_cpu(c, 7), on_gpu(c, 7);
  on_gpu.to(Device::cuda());
  auto [in, target] = next_token_batch(4, 12, 11, 32);
  set_matmul_precision(MatmulPrecision::bf16);
  Tensor loss_c = soft_loss(on_cpu, in, target), loss_g = soft_loss(on_gpu, gpu(in), gpu(target));
  EXPECT_NEAR(loss_g.item(), loss_c.item(), 1e-2 * std::abs(loss_c.item()));
  loss_c.backward();
  loss_g.backward();
  auto pc = on_cpu.named_parameters(), pg = on_gpu.named_parameters();
  for (size_t i = 0; i < pc.size(); ++i) {
    EXPECT_EQ(pg[i].second->tensor.grad().dtype(), DType::f32) << pc[i].first;  // fp32 master gradients
    EXPECT_LT(rel_l2(pg[i].second->tensor.grad(), pc[i].second->tensor.grad()), 5e-2) << pc[i].first;
  }
}

}  // namespace
}  // namespace sn
