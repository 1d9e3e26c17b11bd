// bench/bench_train_step.cpp — one training step (forward, backward, SGD update) of a single
// sub-model of W1 `fmnist-mlp` and W2 `fmnist-resnet` at batch 128: the full model, half width
// and the smallest (and, for the step against FLOPs, W2 at every width and at depths 1 and 2); of W3 `fmnist-vit` at batch 128 (AdamW): the full encoder, depth 3 with 4
// heads and MLP 384, and the smallest; and of W4 `fortunes-llama` at batch 16 × 256 bytes (AdamW, gradients
// clipped at norm 1): the SoFT objective (all four exits from one pass), the full depth alone
// and the shallowest exit alone. The PyTorch twin is bench/compare/train_step_torch.py.
// The update steps the sub-model's parameter windows (nested semantics), the work the twin's
// dense network of the sub-model's size does; SN_BENCH_UPDATE=dense steps every element of the
// full network instead (the recipes' default), a fixed cost per optimizer step.
// SN_BENCH_DEVICE=cuda runs the same steps on the GPU (each step ends with a device
// synchronisation).
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "autograd/ops.h"
#include "kernels/backend.h"
#include "models/llama.h"
#include "models/model.h"
#include "train/optimizer.h"

using namespace sn;

namespace {

Device bench_device() {
  const char* d = std::getenv("SN_BENCH_DEVICE");
  return d ? Device::parse(d) : Device::cpu();
}

UpdateSemantics bench_update() {
  const char* u = std::getenv("SN_BENCH_UPDATE");
  return parse_update_semantics(u ? u : "nested");
}

struct Setup {
  std::shared_ptr<Model> model;
  std::unique_ptr<Optimizer> optimizer;
  Tensor x, y;
};

Setup& setup(const std::string& name) {
  static std::map<std::string, Setup> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  Setup s;
  s.model = make_model({name, BnStats::per_submodel, 0});
  s.model->to(bench_device());
  OptimizerConfig oc;  // the recipes' optimizers: SGD for the convolutional/MLP models, AdamW for the encoder
  oc.weight_decay = 5e-4f;
  oc.semantics = bench_update();
  if (name == "fmnist-vit") {
    oc.name = "adamw";
    oc.weight_decay = 0.05f;
  }
  s.optimizer = std::make_unique<Optimizer>(*s.model, oc);
  Generator gen(1);
  s.x = randn({128, 1, 28, 28}, gen);
  std::vector<int64_t> labels(128);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = int64_t(i % 10);
  s.y = from_vector(labels, {128});
  s.x = s.x.to(bench_device());
  s.y = s.y.to(bench_device());
  return cache.emplace(name, std::move(s)).first->second;
}

void step(benchmark::State& state, const std::string& model, const std::string& spec) {
  Setup& s = setup(model);
  const SubModel sub = s.model->space().parse(spec);
  const int64_t index = s.model->space().index_of(sub);
  std::vector<Shape> windows;
  for (auto& [name, p] : s.model->named_parameters()) windows.push_back(p->active_shape(sub));
  auto once = [&] {
    cross_entropy(s.model->forward(s.x, {sub, index, nullptr}), s.y).backward();
    s.optimizer->step(0.01f, windows);
    s.optimizer->zero_grad(windows);
    backend_for(bench_device()).synchronize();
  };
  once();
  for (auto _ : state) once();
  state.counters["MFLOPs/example"] = double(s.model->flops(sub)) * 1e-6;
  state.counters["examples/s"] = benchmark::Counter(128.0, benchmark::Counter::kIsIterationInvariantRate);
}

struct LmSetup {
  std::shared_ptr<SortedLlama> model;
  std::unique_ptr<Optimizer> optimizer;
  Tensor x, y;
};

LmSetup& lm_setup() {
  static LmSetup s = [] {
    LmSetup l;
    l.model = std::dynamic_pointer_cast<SortedLlama>(make_model({"fortunes-llama", BnStats::per_submodel, 0}));
    l.model->to(bench_device());
    OptimizerConfig oc;
    oc.name = "adamw";
    oc.weight_decay = 0.1f;
    oc.beta2 = 0.95f;
    oc.semantics = bench_update();
    l.optimizer = std::make_unique<Optimizer>(*l.model, oc);
    const int64_t B = 16, T = l.model->config().context;
    Generator gen(2);
    std::vector<int64_t> bytes(static_cast<size_t>(B * (T + 1)));
    for (int64_t& b : bytes) b = int64_t(gen.below(256));
    Tensor all = from_vector(bytes, {B, T + 1});
    l.x = all.narrow(1, 0, T).contiguous().to(bench_device());
    l.y = all.narrow(1, 1, T).contiguous().to(bench_device());
    return l;
  }();
  return s;
}

// depth 0: the SoFT objective over every exit; otherwise that exit alone.
void lm_step(benchmark::State& state, int64_t depth) {
  LmSetup& s = lm_setup();
  SortedLlama& m = *s.model;
  const SubModelSpace& space = m.space();
  const int64_t index = depth ? space.index_of(space.parse("depth=" + std::to_string(depth))) : space.size() - 1;
  const SubModel sub = space.at(index);
  std::vector<Shape> windows;
  for (auto& [name, p] : m.named_parameters()) windows.push_back(p->active_shape(sub));
  const int64_t V = m.config().vocab, tokens = s.x.numel();
  auto once = [&] {
    Tensor loss = depth ? cross_entropy(m.forward(s.x, {sub, index, nullptr}).reshape({-1, V}), s.y.reshape({-1}))
                        : soft_loss(m, s.x, s.y);
    loss.backward();
    s.optimizer->clip_grad_norm(1.f, windows);
    s.optimizer->step(1e-4f, windows);
    s.optimizer->zero_grad(windows);
    backend_for(bench_device()).synchronize();
  };
  once();
  for (auto _ : state) once();
  // SoFT: the full depth plus the head of each shallower exit, per token.
  const int64_t head = 2 * m.config().dim * V;
  const int64_t flops = m.flops(sub) + (depth ? 0 : (space.size() - 1) * head);
  state.counters["MFLOPs/example"] = double(flops) * 1e-6;
  state.counters["tokens/s"] = benchmark::Counter(double(tokens), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK_CAPTURE(lm_step, llama_soft, 0)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(lm_step, llama_full, 8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(lm_step, llama_exit2, 2)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_CAPTURE(step, mlp_full, "fmnist-mlp", "width=1024")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, mlp_half, "fmnist-mlp", "width=512")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, mlp_smallest, "fmnist-mlp", "width=128")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, resnet_full, "fmnist-resnet", "width=8/8")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, resnet_half, "fmnist-resnet", "width=4/8")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, resnet_smallest, "fmnist-resnet", "width=1/8,depth.s1=1,depth.s2=1,depth.s3=1")
    ->Unit(benchmark::kMillisecond)->UseRealTime();
// W2's step against its FLOPs: every width at full depth, and the shallowest depths at full width.
BENCHMARK_CAPTURE(step, resnet_w1, "fmnist-resnet", "width=1/8")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, resnet_w2, "fmnist-resnet", "width=2/8")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, resnet_w3, "fmnist-resnet", "width=3/8")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, resnet_w5, "fmnist-resnet", "width=5/8")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, resnet_w6, "fmnist-resnet", "width=6/8")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, resnet_w7, "fmnist-resnet", "width=7/8")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, resnet_d1, "fmnist-resnet", "width=8/8,depth.s1=1,depth.s2=1,depth.s3=1")
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, resnet_d2, "fmnist-resnet", "width=8/8,depth.s1=2,depth.s2=2,depth.s3=2")
    ->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_CAPTURE(step, vit_full, "fmnist-vit", "depth=6,heads=6,ffn=768")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, vit_mid, "fmnist-vit", "depth=3,heads=4,ffn=384")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, vit_smallest, "fmnist-vit", "depth=1,heads=2,ffn=192")->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
