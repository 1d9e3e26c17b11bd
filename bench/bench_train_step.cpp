// bench/bench_train_step.cpp — one training step (forward, backward, SGD update) of a single
// sub-model of W1 `fmnist-mlp` and W2 `fmnist-resnet` at batch 128: the full model, half width
// and the smallest. The PyTorch twin is bench/compare/train_step_torch.py. SN_BENCH_DEVICE=cuda
// runs the same steps on the GPU (each step ends with a device synchronisation).
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "autograd/ops.h"
#include "kernels/backend.h"
#include "models/model.h"
#include "train/optimizer.h"

using namespace sn;

namespace {

Device bench_device() {
  const char* d = std::getenv("SN_BENCH_DEVICE");
  return d ? Device::parse(d) : Device::cpu();
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
  OptimizerConfig oc;
  oc.weight_decay = 5e-4f;
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

}  // namespace

BENCHMARK_CAPTURE(step, mlp_full, "fmnist-mlp", "width=1024")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, mlp_half, "fmnist-mlp", "width=512")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, mlp_smallest, "fmnist-mlp", "width=128")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, resnet_full, "fmnist-resnet", "width=8/8")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, resnet_half, "fmnist-resnet", "width=4/8")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(step, resnet_smallest, "fmnist-resnet", "width=1/8,depth.s1=1,depth.s2=1,depth.s3=1")
    ->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
