// tests/test_train.cpp — the sorted update rule and its machinery (label `train`): samplers,
// gradient accumulation over sub-models, dense vs nested optimizer semantics, checkpoints,
// bit-exact resume, export, configs, and a tiny model that learns.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <set>

#include "core/allocator.h"
#include "core/failpoint.h"
#include "core/grad_mode.h"
#include "models/model.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/data.h"
#include "train/optimizer.h"
#include "train/safetensors.h"
#include "train/sampler.h"
#include "train/trainer.h"

namespace sn {
namespace {

using testing::random_tensor;

std::string temp_dir(const std::string& name) {
  std::string dir = ::testing::TempDir() + "sn_" + name + "_" + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0755);
  return dir;
}

// A small IDX data set on disk (random 28×28 images whose class is readable from the mean
// brightness of a band), so the trainer can run without the real data.
std::string write_tiny_idx(const std::string& dir, int64_t n_train, int64_t n_test) {
  auto write = [&](const std::string& prefix, int64_t n, uint64_t seed) {
    Generator g(seed);
    std::string img(16 + size_t(n) * 784, '\0'), lab(8 + size_t(n), '\0');
    auto be = [](std::string& s, size_t at, uint32_t v) {
      for (int i = 0; i < 4; ++i) s[at + size_t(i)] = char((v >> (24 - 8 * i)) & 0xff);
    };
    be(img, 0, 0x803), be(img, 4, uint32_t(n)), be(img, 8, 28), be(img, 12, 28);
    be(lab, 0, 0x801), be(lab, 4, uint32_t(n));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t cls = int64_t(g.below(10));
      lab[8 + size_t(i)] = char(cls);
      for (int64_t p = 0; p < 784; ++p) {
        const bool band = (p / 28) / 3 == cls % 10 || (p % 28) / 3 == cls % 10;
        img[16 + size_t(i * 784 + p)] = char(uint8_t((band ? 150 : 20) + g.below(80)));
      }
    }
    std::ofstream(dir + "/" + prefix + "-images-idx3-ubyte", std::ios::binary) << img;
    std::ofstream(dir + "/" + prefix + "-labels-idx1-ubyte", std::ios::binary) << lab;
  };
  write("train", n_train, 1);
  write("t10k", n_test, 2);
  return dir;
}

TrainConfig tiny_config(const std::string& data_dir, const std::string& model = "fmnist-mlp") {
  TrainConfig c;
  c.model = model;
  c.dataset = "idx";
  c.data_dir = data_dir;
  c.batch_size = 32;
  c.epochs = 2;
  c.submodels_per_step = 3;
  c.sampler = "sandwich";
  c.lr = 0.05;
  c.log_every = 1000;
  c.eval_batch_size = 100;
  c.latency_repeats = 1;
  return c;
}

TEST(Sampler, CoversTheSpaceAndIsDeterministic) {
  SubModelSpace space({Axis{"width", {1, 2, 3, 4}, 4}, Axis{"depth", {1, 2, 3}}});
  for (const char* kind : {"uniform", "sandwich", "enumerate_all"}) {
    Sampler a(space, parse_sampler(kind), 3, 7), b(space, parse_sampler(kind), 3, 7);
    std::set<int64_t> seen;
    for (int step = 0; step < 200; ++step) {
      std::vector<int64_t> s = a.next();
      ASSERT_EQ(s, b.next()) << kind;
      ASSERT_EQ(s.size(), 3u);
      seen.insert(s.begin(), s.end());
      if (std::string(kind) == "sandwich") {
        ASSERT_EQ(s[0], space.size() - 1);
        ASSERT_EQ(s[1], 0);
      }
    }
    EXPECT_EQ(int64_t(seen.size()), space.size()) << kind;
  }
  // Weighted with a negative power draws the cheap sub-models more often.
  std::vector<int64_t> flops;
  for (int64_t i = 0; i < space.size(); ++i) flops.push_back(i + 1);
  Sampler w(space, SamplerKind::weighted, 1, 3, flops, -1.0);
  int64_t small = 0, large = 0;
  for (int i = 0; i < 4000; ++i) {
    int64_t s = w.next()[0];
    small += s == 0;
    large += s == space.size() - 1;
  }
  EXPECT_GT(small, 5 * large);
  // The state round-trips mid-stream.
  Sampler c(space, SamplerKind::uniform, 2, 9);
  c.next();
  SamplerState st = c.state();
  Sampler d(space, SamplerKind::uniform, 2, 1234);
  d.set_state(st);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(c.next(), d.next());
  EXPECT_THROW(Sampler(space, SamplerKind::sandwich, 1, 0), Error);
}

TEST(SortedUpdate, AccumulatedGradientIsTheSumOfPerSubModelGradients) {
  auto model = make_model({"fmnist-resnet", BnStats::per_submodel, 3});
  const SubModelSpace& space = model->space();
  Tensor x = random_tensor({4, 1, 28, 28}, 5);
  Tensor y = from_vector(std::vector<int64_t>{1, 2, 3, 4}, {4});
  std::vector<int64_t> subs{space.size() - 1, 0, 77};
  auto params = model->named_parameters();
  std::vector<std::vector<float>> total(params.size());
  for (size_t i = 0; i < params.size(); ++i) total[i].assign(size_t(params[i].second->tensor.numel()), 0.f);
  for (int64_t s : subs) {  // each alone
    model->zero_grad();
    cross_entropy(model->forward(x, {space.at(s), s, nullptr}), y).backward();
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor g = params[i].second->tensor.grad();
      if (!g.defined()) continue;
      std::vector<float> gv = to_vector<float>(g);
      for (size_t k = 0; k < gv.size(); ++k) total[i][k] += gv[k];
    }
  }
  model->zero_grad();
  for (int64_t s : subs) cross_entropy(model->forward(x, {space.at(s), s, nullptr}), y).backward();
  for (size_t i = 0; i < params.size(); ++i) {
    Tensor g = params[i].second->tensor.grad();
    ASSERT_TRUE(g.defined()) << params[i].first;
    testing::expect_close(g, total[i], 1e-4f, params[i].first.c_str());
  }
}

TEST(SortedUpdate, NestedSemanticsLeaveUntouchedElementsAlone) {
  for (const char* opt : {"sgd", "adamw"}) {
    for (UpdateSemantics sem : {UpdateSemantics::dense, UpdateSemantics::nested}) {
      SCOPED_TRACE(std::string(opt) + (sem == UpdateSemantics::dense ? " dense" : " nested"));
      auto model = make_model({"fmnist-mlp", BnStats::shared, 1});
      OptimizerConfig oc;
      oc.name = opt;
      oc.weight_decay = 0.1f;
      oc.semantics = sem;
      Optimizer optimizer(*model, oc);
      const SubModel small = model->space().parse("width=128");
      auto params = model->named_parameters();
      Tensor w = params[2].second->tensor;  // fc2.weight [1024, 1024]
      std::vector<float> before = to_vector<float>(w);
      std::vector<Shape> windows;
      for (auto& [name, p] : params) windows.push_back(p->active_shape(small));
      for (int step = 0; step < 2; ++step) {
        Tensor x = random_tensor({8, 1, 28, 28}, uint64_t(10 + step));
        sum(model->forward(x, {small, 0, nullptr})).backward();
        optimizer.step(0.1f, windows);
        optimizer.zero_grad(windows);
      }
      std::vector<float> after = to_vector<float>(w);
      const size_t inside = 5 * 1024 + 7, outside = 500 * 1024 + 600;
      EXPECT_NE(after[inside], before[inside]);
      if (sem == UpdateSemantics::nested) EXPECT_EQ(after[outside], before[outside]);
      else EXPECT_NE(after[outside], before[outside]);  // weight decay moves every element
    }
  }
}

TEST(Safetensors, RoundTripAndHostileFiles) {
  const std::string dir = temp_dir("st");
  const std::string path = dir + "/a.safetensors";
  std::map<std::string, Tensor> t{{"w", random_tensor({3, 4}, 1)}, {"i", arange(5)},
                                  {"h", random_tensor({7}, 2).to(DType::bf16)}};
  save_safetensors(path, t, {{"note", "hello"}});
  SafetensorsFile f = load_safetensors(path);
  EXPECT_EQ(f.metadata["note"], "hello");
  EXPECT_EQ(to_vector<float>(f.tensors["w"]), to_vector<float>(t["w"]));
  EXPECT_EQ(to_vector<int64_t>(f.tensors["i"]), to_vector<int64_t>(t["i"]));
  EXPECT_EQ(f.tensors["h"].dtype(), DType::bf16);

  // `bytes` written to a file that `read` must refuse with a message containing `expect`.
  auto refused = [&](auto read, const std::string& bytes, const char* expect) {
    std::ofstream(dir + "/bad.safetensors", std::ios::binary) << bytes;
    try {
      read(dir + "/bad.safetensors");
      ADD_FAILURE() << "accepted a file expected to fail with: " << expect;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  };
  auto hostile = [&](const std::string& bytes, const char* expect) {
    refused([](const std::string& p) { load_safetensors(p); }, bytes, expect);
  };
  auto with_header = [](const std::string& json, size_t data_bytes) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[size_t(i)] = char((json.size() >> (8 * i)) & 0xff);
    return s + json + std::string(data_bytes, '\0');
  };
  hostile("abc", "too short");
  hostile(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", "declares a header");
  hostile(with_header("{not json", 0), "malformed JSON");
  hostile(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,800]}})", 8), "outside");
  hostile(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 16), "overlap");
  hostile(with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "bytes for shape");
  hostile(with_header(R"({"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", 8), "unsupported dtype");
  hostile(with_header(R"({"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}})", 8), "shape");
  // A truncated checkpoint: cut the good file in half.
  std::ifstream in(path, std::ios::binary);
  std::string whole((std::istreambuf_iterator<char>(in)), {});
  hostile(whole.substr(0, whole.size() / 2), "");
  EXPECT_THROW(load_safetensors(dir), Error);  // a directory: "not a regular file"
  ::unlink((dir + "/fifo").c_str());
  ASSERT_EQ(::mkfifo((dir + "/fifo").c_str(), 0600), 0);
  EXPECT_THROW(load_safetensors_metadata(dir + "/fifo"), Error);  // refused, not waited on

  // A filtered read: only the wanted tensors' bytes are read (and checked).
  SafetensorsFile only_w = load_safetensors(path, [](const std::string& name) { return name == "w"; });
  ASSERT_EQ(only_w.tensors.size(), 1u);
  EXPECT_EQ(to_vector<float>(only_w.tensors["w"]), to_vector<float>(t["w"]));

  // The metadata alone (what `sortednet` reads to learn a checkpoint's recipe): the header is
  // checked the same way; the tensors' bytes are not read.
  EXPECT_EQ(load_safetensors_metadata(path).at("note"), "hello");
  auto hostile_header = [&](const std::string& bytes, const char* expect) {
    refused([](const std::string& p) { load_safetensors_metadata(p); }, bytes, expect);
  };
  hostile_header("abc", "too short");
  hostile_header(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", "declares a header");
  hostile_header(with_header("{not json", 0), "malformed JSON");
  hostile_header(with_header(R"({"__metadata__":{"a":1}})", 0), "is not a string");
  hostile_header(whole.substr(0, 20), "declares a header");
}

TEST(Config, ReadsOverridesAndRejectsBadKeys) {
  TrainConfig c = parse_config("[train]\nepochs = 3\n[optimizer]\nlr = 0.2\n", {"train.sampler=uniform", "data.flip=true"});
  EXPECT_EQ(c.epochs, 3);
  EXPECT_DOUBLE_EQ(c.lr, 0.2);
  EXPECT_EQ(c.sampler, "uniform");
  EXPECT_TRUE(c.flip);
  TrainConfig again = parse_config(c.to_toml());
  EXPECT_EQ(again.to_toml(), c.to_toml());
  auto expect_error = [](const std::string& text, const std::vector<std::string>& sets, const char* part) {
    try {
      parse_config(text, sets);
      ADD_FAILURE() << "accepted " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_error("[train]\nepoch = 3\n", {}, "unknown key 'train.epoch'");
  expect_error("[train]\nepochs = \"x\"\n", {}, "must be an integer");
  expect_error("[train]\nepochs = 0\n", {}, "must be positive");
  expect_error("", {"train.sampler=roulette"}, "unknown sampler");
  expect_error("[train\n", {}, "config");
  expect_error("", {"nokey"}, "section.key=value");
}

TEST(Trainer, TinyModelLearnsAndResumesBitExactly) {
  const std::string data = write_tiny_idx(temp_dir("data"), 640, 200);
  TrainConfig c = tiny_config(data);
  c.epochs = 3;
  // One uninterrupted run...
  Trainer full(c, temp_dir("full"));
  std::vector<EvalRow> rows = full.run();
  ASSERT_EQ(rows.size(), 8u);
  for (const EvalRow& r : rows) EXPECT_GT(r.accuracy, 0.8) << r.submodel;  // chance is 0.1
  // ...and one that stops, saves, and continues in a new process-like trainer.
  const std::string dir = temp_dir("resume");
  {
    Trainer first(c, dir);
    first.train_until(23);
    first.save(dir + "/checkpoint.safetensors");
  }
  Trainer second(c, dir, /*resume=*/true);
  EXPECT_EQ(second.step(), 23);
  second.train_until(second.total_steps());
  auto a = full.model().state_dict(), b = second.model().state_dict();
  for (auto& [name, t] : a) EXPECT_EQ(to_vector<float>(t), to_vector<float>(b[name])) << name;
}

TEST(Trainer, ExportEqualsTheSlicedSubModel) {
  const std::string data = write_tiny_idx(temp_dir("data2"), 256, 64);
  TrainConfig c = tiny_config(data, "fmnist-resnet");
  c.max_steps = 3;
  c.batch_size = 16;
  const std::string dir = temp_dir("export");
  Trainer t(c, dir);
  t.train_until(3);
  Model& model = t.model();
  const SubModel sub = model.space().parse("width=3/8,depth.s1=2,depth.s2=1");
  export_submodel(dir + "/sub.safetensors", model, sub, c);
  SafetensorsFile f = load_safetensors(dir + "/sub.safetensors");
  EXPECT_EQ(f.metadata["submodel"], sub.str());
  // Every exported tensor is the window of its parameter, values identical.
  for (auto& [name, p] : model.named_parameters()) {
    Shape shape = p->active_shape(sub);
    if (numel_of(shape) == 0) {
      EXPECT_EQ(f.tensors.count(name), 0u) << name;
      continue;
    }
    ASSERT_EQ(f.tensors.count(name), 1u) << name;
    EXPECT_EQ(to_vector<float>(f.tensors[name]), to_vector<float>(p->tensor.prefix(shape))) << name;
  }
  EXPECT_LT(f.tensors.size(), model.named_parameters().size() + model.named_buffers().size());

  // The file loads into the standalone dense network of that size, whose outputs are the
  // sliced sub-model's, bit for bit.
  auto dense = make_model({c.model, parse_bn_stats(c.bn_stats), 99, sub.str()});
  ASSERT_EQ(dense->space().size(), 1);
  dense->load_state_dict(f.tensors);
  EXPECT_EQ(dense->parameter_count(dense->space().at(0)), model.parameter_count(sub));
  EXPECT_EQ(dense->flops(dense->space().at(0)), model.flops(sub));
  NoGradGuard no_grad;
  model.eval();
  dense->eval();
  Tensor x = random_tensor({5, 1, 28, 28}, 8);
  std::vector<float> sliced = to_vector<float>(model.forward(x, {sub, model.space().index_of(sub), nullptr}));
  std::vector<float> standalone = to_vector<float>(dense->forward(x, {dense->space().at(0), 0, nullptr}));
  EXPECT_EQ(sliced, standalone);
}

TEST(Data, MalformedIdxFilesAreRefusedClearly) {
  const std::string dir = temp_dir("idx");
  write_tiny_idx(dir, 10, 10);
  std::ifstream in(dir + "/train-images-idx3-ubyte", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(dir + "/cut-images", std::ios::binary) << bytes.substr(0, bytes.size() - 100);
  std::ofstream(dir + "/magic-images", std::ios::binary) << std::string("\0\0\x08\x01", 4) + bytes.substr(4);
  for (auto [file, part] : {std::pair{"cut-images", "truncated"}, {"magic-images", "not an IDX"}, {"missing", "cannot open"}}) {
    try {
      load_idx(dir + "/" + file, dir + "/train-labels-idx1-ubyte");
      ADD_FAILURE() << file;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  }
}

TEST(Data, LoaderBatchesAreAFunctionOfEpochAndIndex) {
  const std::string dir = write_tiny_idx(temp_dir("loader"), 100, 10);
  Dataset d = load_fashion_mnist(dir, true);
  BatchLoader a(d, 16, true, Augment{2, true}, 5), b(d, 16, true, Augment{2, true}, 5, 0);
  b.seek(1, 2);
  for (int i = 0; i < 6 + 2; ++i) a.next();  // 6 batches per epoch: (1, 2) is the 9th
  Batch x = a.next(), y = b.next();
  EXPECT_EQ(x.epoch, 1);
  EXPECT_EQ(x.index, 2);
  EXPECT_EQ(to_vector<float>(x.images), to_vector<float>(y.images));
  EXPECT_EQ(to_vector<int64_t>(x.labels), to_vector<int64_t>(y.labels));
  // Staged in pinned memory (ordinary memory without a GPU backend), the batches are the same.
  BatchLoader c(d, 16, true, Augment{2, true}, 5);
  c.set_pinned(true);
  c.seek(1, 2);
  Batch z = c.next();
  EXPECT_EQ(z.images.is_pinned(), pinned_host_allocator() != nullptr);
  EXPECT_EQ(to_vector<float>(z.images), to_vector<float>(x.images));
  EXPECT_EQ(to_vector<int64_t>(z.labels), to_vector<int64_t>(x.labels));
  EXPECT_TRUE(z.images.to(Device::cpu(), /*non_blocking=*/true).same(z.images));
}

}  // namespace
}  // namespace sn

namespace sn {
namespace {

TEST(Data, Cifar10BinaryBatches) {
  const std::string dir = temp_dir("cifar");
  std::string records;
  for (int r = 0; r < 5; ++r) {
    records += char(r % 10);
    for (int p = 0; p < 3072; ++p) records += char((p / 1024) * 80 + r);  // channel c has value 80c + r
  }
  std::ofstream(dir + "/data_batch_1.bin", std::ios::binary) << records;
  Dataset d = load_cifar10({dir + "/data_batch_1.bin"});
  ASSERT_EQ(d.images.sizes(), (Shape{5, 3, 32, 32}));
  EXPECT_EQ(to_vector<int64_t>(d.labels), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  // Pixel (record 2, channel 1) = 82, normalised with channel 1's statistics.
  EXPECT_NEAR(to_vector<float>(d.images.select(0, 2).select(0, 1))[0], (82.f / 255.f - 0.4822f) / 0.2435f, 1e-5f);
  std::ofstream(dir + "/bad.bin", std::ios::binary) << records.substr(0, 100);
  EXPECT_THROW(load_cifar10({dir + "/bad.bin"}), Error);
  std::string bad_label = records;
  bad_label[0] = char(12);
  std::ofstream(dir + "/label.bin", std::ios::binary) << bad_label;
  EXPECT_THROW(load_cifar10({dir + "/label.bin"}), Error);
}

TEST(Trainer, IndependentModeTrainsOneSubModelOnly) {
  const std::string data = write_tiny_idx(temp_dir("data3"), 256, 64);
  TrainConfig c = tiny_config(data);
  c.independent = "width=256";
  c.epochs = 1;
  Trainer t(c, temp_dir("independent"));
  std::vector<EvalRow> rows = t.run();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].submodel, "width=256");
  // Nothing outside the sub-model's window moved from its initial value.
  auto fresh = make_model({c.model, parse_bn_stats(c.bn_stats), c.seed});
  Tensor trained = t.model().named_parameters()[2].second->tensor, init = fresh->named_parameters()[2].second->tensor;
  EXPECT_EQ(to_vector<float>(trained.narrow(0, 256, 768)), to_vector<float>(init.narrow(0, 256, 768)));
  EXPECT_NE(to_vector<float>(trained.prefix({256, 256})), to_vector<float>(init.prefix({256, 256})));
}

TEST(Trainer, DistillationAndFreshBatchesPerSubModel) {
  const std::string data = write_tiny_idx(temp_dir("data4"), 320, 64);
  TrainConfig c = tiny_config(data);
  c.distill_alpha = 0.5;
  c.distill_temperature = 2.0;
  c.epochs = 3;
  {
    Trainer t(c, temp_dir("distill"));
    std::vector<EvalRow> rows = t.run();
    for (const EvalRow& r : rows) EXPECT_TRUE(std::isfinite(r.loss)) << r.submodel;
    EXPECT_GT(rows.back().accuracy, 0.5);
  }
  // The teacher's targets belong to the step's one batch: with a batch per sub-model, or with a
  // sampler that does not put the largest first, distillation is refused.
  c.new_batch_per_submodel = true;
  EXPECT_THROW(Trainer(c, temp_dir("distill-fresh")), Error);
  c.new_batch_per_submodel = false;
  c.sampler = "uniform";
  EXPECT_THROW(Trainer(c, temp_dir("distill-uniform")), Error);
  // Fresh batches alone: 3 sub-models per step consume 3 batches.
  c.distill_alpha = 0;
  c.sampler = "sandwich";
  c.new_batch_per_submodel = true;
  Trainer t(c, temp_dir("fresh"));
  EXPECT_EQ(t.total_steps(), 3 * (320 / 32) / 3);
  std::vector<EvalRow> rows = t.run();
  for (const EvalRow& r : rows) EXPECT_TRUE(std::isfinite(r.loss)) << r.submodel;
}

// A step skipped for a non-finite loss leaves the model as it was, BatchNorm's running
// statistics included (the forward passes had already updated them with infinities).
TEST(Trainer, ASkippedStepLeavesBatchNormStatisticsAlone) {
  const std::string data = write_tiny_idx(temp_dir("data5"), 128, 32);
  TrainConfig c = tiny_config(data, "fmnist-resnet");
  c.bn_stats = "shared";
  c.epochs = 1;
  c.submodels_per_step = 2;
  Trainer t(c, temp_dir("skip-bn"));
  t.train_until(1);
  std::map<std::string, std::vector<float>> before;
  for (auto& [name, b] : t.model().named_buffers()) before[name] = to_vector<float>(*b);
  for (auto& [name, p] : t.model().named_parameters()) before[name] = to_vector<float>(p->tensor);
  arm_failpoint("nan-batch", 1);
  t.train_until(2);
  arm_failpoint("nan-batch", 0);
  EXPECT_EQ(t.skipped_steps(), 1);
  for (auto& [name, b] : t.model().named_buffers()) EXPECT_EQ(to_vector<float>(*b), before[name]) << name;
  for (auto& [name, p] : t.model().named_parameters()) EXPECT_EQ(to_vector<float>(p->tensor), before[name]) << name;
}

// The count toward train.max_consecutive_skips survives a resume: two skipped steps, a checkpoint,
// and a third in a row after it stops the run.
TEST(Trainer, ConsecutiveSkipsCarryAcrossAResume) {
  const std::string data = write_tiny_idx(temp_dir("data6"), 128, 32);
  TrainConfig c = tiny_config(data, "fmnist-mlp");
  c.epochs = 1;
  c.max_consecutive_skips = 2;
  const std::string dir = temp_dir("skips-resume");
  {
    Trainer first(c, dir);
    first.train_until(1);
    for (int64_t step = 2; step <= 3; ++step) {
      arm_failpoint("nan-batch", 1);
      first.train_until(step);
    }
    arm_failpoint("nan-batch", 0);
    EXPECT_EQ(first.skipped_steps(), 2);
    first.save(dir + "/checkpoint.safetensors");
  }
  Trainer second(c, dir, /*resume=*/true);
  EXPECT_EQ(second.skipped_steps(), 2);
  arm_failpoint("nan-batch", 1);
  EXPECT_THROW(second.train_until(4), Error);
  arm_failpoint("nan-batch", 0);
}

// eval.recalibration_batches = 0 keeps the trained statistics, for export and predict as for eval
// (the recalibration guard used to reset them to 0 and 1 and then run no batch).
// n random images labelled 1, and the largest W2 sub-model run once on them in train mode (its
// statistics then neither the initial 0 and 1 nor a reset).
Dataset random_images_after_one_batch(Model& model, int64_t n, uint64_t seed) {
  Generator gen(seed);
  Dataset data;
  data.images = randn({n, 1, 28, 28}, gen);
  data.labels = from_vector(std::vector<int64_t>(size_t(n), 1), {n});
  data.black = {0.f};
  NoGradGuard no_grad;
  model.train();
  model.forward(data.images, {model.space().at(215), 215, nullptr});
  return data;
}

TEST(Evaluate, NoRecalibrationBatchesKeepsTheStatistics) {
  auto model = make_model({"fmnist-resnet", BnStats::recalibrate, 3});
  const Dataset data = random_images_after_one_batch(*model, 8, 6);
  std::map<std::string, std::vector<float>> before;
  for (auto& [name, b] : model->named_buffers()) before[name] = to_vector<float>(*b);
  TrainConfig c;
  c.bn_stats = "recalibrate";
  c.batch_size = 4;
  c.recalibration_batches = 0;
  recalibrate_batch_norms(*model, model->space().at(100), 100, data, c);
  for (auto& [name, b] : model->named_buffers()) EXPECT_EQ(to_vector<float>(*b), before[name]) << name;
}

// Under per_submodel statistics, evaluating a sub-model that never ran in train mode says so.
TEST(Evaluate, WarnsOfSubModelsWithUntrainedStatistics) {
  auto model = make_model({"fmnist-resnet", BnStats::per_submodel, 3});
  const Dataset data = random_images_after_one_batch(*model, 4, 8);
  TrainConfig c;
  c.eval_batch_size = 4;
  c.latency_repeats = 1;
  auto warning = [&](const std::vector<SubModel>& subs) {
    ::testing::internal::CaptureStderr();
    evaluate(*model, subs, data, data, c);
    return ::testing::internal::GetCapturedStderr();
  };
  EXPECT_EQ(warning({model->space().at(215)}), "");
  const std::string text = warning({model->space().at(215), model->space().at(3), model->space().at(7)});
  EXPECT_NE(text.find("2 of 3 sub-models (e.g. " + model->space().at(3).str() + ")"), std::string::npos) << text;
}

// Evaluating many sub-models through the model's stages (each shared prefix computed once) gives
// exactly the rows of one whole forward pass per sub-model: W2 with recalibrated and with shared
// BatchNorm statistics, W3 (depths sharing their blocks); a list in any order with a name given
// twice, ragged test batches, and the test set in one chunk or in several (statistics restored).
TEST(Evaluate, SharedStagesGiveTheRowsOfOnePassPerSubModel) {
  Generator gen(5);
  auto dataset = [&](int64_t n) {
    std::vector<int64_t> labels;
    for (int64_t i = 0; i < n; ++i) labels.push_back(int64_t(gen.below(10)));
    Dataset d;
    d.images = randn({n, 1, 28, 28}, gen);
    d.labels = from_vector(labels, {n});
    d.black = {0.f};
    return d;
  };
  const Dataset test = dataset(37), calibration = dataset(48);
  struct Case {
    const char* model;
    const char* bn_stats;
    size_t stages;
    std::vector<int64_t> subs;
  };
  for (const Case& k : {Case{"fmnist-resnet", "recalibrate", 3, {215, 0, 77, 13, 200, 77, 5, 100, 150, 31, 26}},
                        Case{"fmnist-resnet", "shared", 3, {215, 0, 77, 13, 200, 5, 31, 26}},
                        Case{"fmnist-vit", "per_submodel", 7, {71, 0, 5, 11, 12, 40, 41, 5, 70}}}) {
    auto model = make_model({k.model, parse_bn_stats(k.bn_stats), 3});
    ASSERT_EQ(model->stages().size(), k.stages);
    TrainConfig c;
    c.bn_stats = k.bn_stats;
    c.batch_size = 16;
    c.recalibration_batches = 2;
    c.eval_batch_size = 10;
    c.latency_repeats = 1;
    std::vector<SubModel> subs;
    for (int64_t i : k.subs) subs.push_back(model->space().at(i));
    c.eval_share_prefixes = false;
    const std::vector<EvalRow> plain = evaluate(*model, subs, test, calibration, c);
    c.eval_share_prefixes = true;
    for (int64_t chunk : {2048, 20, 7}) {  // one chunk; two (20 + 17); four of one batch (7 -> 10)
      SCOPED_TRACE(std::string(k.model) + " " + k.bn_stats + ", chunk " + std::to_string(chunk));
      c.eval_share_chunk = chunk;
      std::vector<int64_t> progress;  // reported as sub-models' worth of the passes over the chunks
      const std::vector<EvalRow> staged = evaluate(*model, subs, test, calibration, c, [&](int64_t done, int64_t all) {
        EXPECT_EQ(all, int64_t(subs.size()));
        EXPECT_TRUE(progress.empty() || done > progress.back());
        progress.push_back(done);
      });
      ASSERT_FALSE(progress.empty());
      EXPECT_EQ(progress.back(), int64_t(subs.size()));
      ASSERT_EQ(staged.size(), subs.size());
      for (size_t i = 0; i < subs.size(); ++i) {
        EXPECT_EQ(staged[i].submodel, subs[i].str());
        EXPECT_EQ(staged[i].submodel, plain[i].submodel);
        EXPECT_EQ(staged[i].params, plain[i].params);
        EXPECT_EQ(staged[i].flops, plain[i].flops);
        EXPECT_EQ(staged[i].accuracy, plain[i].accuracy) << subs[i].str();
        EXPECT_EQ(staged[i].loss, plain[i].loss) << subs[i].str();
        EXPECT_GT(staged[i].latency_ms, 0.0);
      }
    }
  }
}

}  // namespace
}  // namespace sn
