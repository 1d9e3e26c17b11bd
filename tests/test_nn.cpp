// tests/test_nn.cpp — the sorted-axis model, nested parameters, layers and the W1/W2 models.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/grad_mode.h"
#include "models/model.h"
#include "test_util.h"

namespace sn {
namespace {

using testing::random_tensor;

SubModelSpace w2_like() {
  return SubModelSpace({Axis{"width", {1, 2, 3, 4, 5, 6, 7, 8}, 8}, Axis{"depth.s1", {1, 2, 3}},
                        Axis{"depth.s2", {1, 2, 3}}, Axis{"depth.s3", {1, 2, 3}}});
}

TEST(SubModels, TextFormRoundTripsAndIndexes) {
  SubModelSpace space = w2_like();
  EXPECT_EQ(space.size(), 216);
  SubModel s = space.parse("width=4/8,depth.s2=1");
  EXPECT_EQ(s.str(), "width=4/8,depth.s1=3,depth.s2=1,depth.s3=3");
  EXPECT_EQ(space.parse("width=0.5").get("width"), 4);
  EXPECT_EQ(space.parse(s.str()), s);
  for (int64_t i = 0; i < space.size(); ++i) {
    ASSERT_EQ(space.index_of(space.at(i)), i);
    ASSERT_EQ(space.at(i).index(), i);
  }
  EXPECT_EQ(space.largest().str(), "width=8/8,depth.s1=3,depth.s2=3,depth.s3=3");
  EXPECT_EQ(space.smallest().str(), "width=1/8,depth.s1=1,depth.s2=1,depth.s3=1");
  EXPECT_TRUE(space.smallest().nested_in(s));
  EXPECT_FALSE(s.nested_in(space.smallest()));
  EXPECT_EQ(s.scaled("width", 64), 32);
  // Spaces around parts, names and sizes, as a config line may have them.
  EXPECT_EQ(space.parse(" width = 4/8 , depth.s2=1 "), s);
  // An integer is a size, a decimal a fraction of the full size.
  EXPECT_EQ(space.parse("width=1").get("width"), 1);
  EXPECT_EQ(space.parse("width=1.0").get("width"), 8);
}

TEST(SubModels, BadTextIsAClearError) {
  SubModelSpace space = w2_like();
  for (const char* bad : {"width=9/8", "width=3/7", "depth.s4=1", "width", "depth.s1=x", "width=0.3"}) {
    try {
      space.parse(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("submodel"), std::string::npos) << e.what();
    }
  }
  // A decimal that is no allowed fraction says how it was read.
  try {
    space.parse("depth.s1=2.0");
    ADD_FAILURE() << "accepted depth.s1=2.0";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fractions of the full size 3"), std::string::npos) << e.what();
  }
  // Sizes must strictly ascend: a repeated one would list the same sub-model twice.
  EXPECT_THROW(SubModelSpace({Axis{"w", {2, 2, 4}}}), Error);
  EXPECT_THROW(SubModelSpace({Axis{"w", {4, 2}}}), Error);
  // An empty sub-model, or one of another space, is an error, not a crash.
  const SubModel empty;
  EXPECT_THROW(empty.get("width"), Error);
  EXPECT_THROW(empty.scaled("width", 64), Error);
  EXPECT_THROW(empty.index(), Error);
  EXPECT_THROW(space.smallest().nested_in(SubModelSpace({Axis{"w", {1, 2}}}).largest()), Error);
  EXPECT_EQ(empty.str(), "");
}

TEST(Models, MlpSubModelsUseNestedWindows) {
  auto model = make_model({"fmnist-mlp", BnStats::shared, 1});
  EXPECT_EQ(model->space().size(), 8);
  SubModel small = model->space().parse("width=128");
  EXPECT_EQ(model->parameter_count(small), 784 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10);
  EXPECT_EQ(model->parameter_count(model->space().largest()), 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 10250);
  Tensor x = random_tensor({4, 1, 28, 28}, 2);
  Tensor y = model->forward(x, {small, 0, nullptr});
  EXPECT_EQ(y.sizes(), (Shape{4, 10}));
  sum(y).backward();
  // Only the window of fc2 received gradient.
  auto params = model->named_parameters();
  Tensor g = params[2].second->tensor.grad();  // fc2.weight
  EXPECT_EQ(params[2].first, "fc2.weight");
  std::vector<float> gv = to_vector<float>(g);
  for (int64_t r = 0; r < 1024; r += 97)
    for (int64_t c = 0; c < 1024; c += 89)
      if (r >= 128 || c >= 128) {
        ASSERT_EQ(gv[size_t(r * 1024 + c)], 0.f);
      }
}

TEST(Models, ResNetHas216SubModelsWithGrowingCost) {
  auto model = make_model({"fmnist-resnet", BnStats::per_submodel, 1});
  const SubModelSpace& space = model->space();
  ASSERT_EQ(space.size(), 216);
  int64_t prev_params = 0;
  for (const char* spec : {"width=1/8,depth.s1=1,depth.s2=1,depth.s3=1", "width=4/8", "width=8/8"}) {
    SubModel s = space.parse(spec);
    int64_t p = model->parameter_count(s);
    EXPECT_GT(p, prev_params) << spec;
    prev_params = p;
  }
  // A sub-model nested in another costs strictly fewer FLOPs and parameters.
  std::vector<SubModel> all = space.enumerate();
  for (const SubModel& a : all)
    for (const SubModel& b : all) {
      if (!a.nested_in(b) || a == b) continue;
      ASSERT_LT(model->flops(a), model->flops(b)) << a.str() << " vs " << b.str();
    }
  EXPECT_LT(model->parameter_count(space.at(1)), model->parameter_count(space.at(2)));
  Tensor x = random_tensor({2, 1, 28, 28}, 3);
  for (int64_t idx : {int64_t(0), int64_t(100), space.size() - 1}) {
    SubModel s = space.at(idx);
    Tensor y = model->forward(x, {s, idx, nullptr});
    EXPECT_EQ(y.sizes(), (Shape{2, 10})) << s.str();
  }
  // The full model's parameter count matches the architecture.
  auto conv = [](int64_t o, int64_t i, int64_t k) { return o * i * k * k; };
  int64_t expected = conv(32, 1, 3) + 64;                                  // stem + bn
  expected += 3 * (2 * conv(32, 32, 3) + 2 * 64);                          // stage 1
  expected += conv(64, 32, 3) + conv(64, 64, 3) + conv(64, 32, 1) + 3 * 128;  // stage 2 block 0
  expected += 2 * (2 * conv(64, 64, 3) + 2 * 128);
  expected += conv(128, 64, 3) + conv(128, 128, 3) + conv(128, 64, 1) + 3 * 256;
  expected += 2 * (2 * conv(128, 128, 3) + 2 * 256);
  expected += 128 * 10 + 10;
  EXPECT_EQ(model->parameter_count(space.largest()), expected);
}

TEST(Models, MobileNetHas72DepthwiseSubModels) {
  auto model = make_model({"fmnist-mobilenet", BnStats::per_submodel, 2});
  const SubModelSpace& space = model->space();
  ASSERT_EQ(space.size(), 72);
  std::vector<SubModel> all = space.enumerate();
  for (const SubModel& a : all)
    for (const SubModel& b : all)
      if (a.nested_in(b) && !(a == b)) {
        ASSERT_LT(model->flops(a), model->flops(b)) << a.str() << " vs " << b.str();
        ASSERT_LT(model->parameter_count(a), model->parameter_count(b)) << a.str();
      }
  Tensor x = random_tensor({3, 1, 28, 28}, 5);
  for (int64_t idx : {int64_t(0), int64_t(41), space.size() - 1}) {
    SubModel s = space.at(idx);
    Tensor y = model->forward(x, {s, idx, nullptr});
    ASSERT_EQ(y.sizes(), (Shape{3, 10})) << s.str();
    sum(y).backward();
  }
  // Depthwise filters are windows too: the smallest sub-model's gradient stays in its window.
  model->zero_grad();
  SubModel small = space.smallest();
  sum(model->forward(x, {small, 0, nullptr})).backward();
  for (auto& [name, p] : model->named_parameters()) {
    Tensor g = p->tensor.grad();
    if (!g.defined()) continue;
    Shape active = p->active_shape(small);
    std::vector<float> inside = to_vector<float>(g.prefix(active));
    double total = 0, in_window = 0;
    for (float v : to_vector<float>(g)) total += std::fabs(v);
    for (float v : inside) in_window += std::fabs(v);
    ASSERT_NEAR(total, in_window, 1e-6 * (1 + total)) << name;
  }
}

TEST(Models, PerSubModelBatchNormStatisticsStaySeparate) {
  auto model = make_model({"fmnist-resnet", BnStats::per_submodel, 1});
  const SubModelSpace& space = model->space();
  Tensor x = random_tensor({4, 1, 28, 28}, 4);
  NoGradGuard no_grad;
  model->forward(x, {space.at(5), 5, nullptr});
  BatchNorm2d* stem_bn = model->batch_norms()[0];
  std::vector<float> rm = to_vector<float>(stem_bn->running_mean);
  const int64_t C = stem_bn->running_mean.size(1);
  bool row5_moved = false;
  for (int64_t c = 0; c < C; ++c) {
    ASSERT_EQ(rm[size_t(4 * C + c)], 0.f);  // another sub-model's row is untouched
    row5_moved |= rm[size_t(5 * C + c)] != 0.f;
  }
  EXPECT_TRUE(row5_moved);
  // A context whose index is not its sub-model's would use another sub-model's statistics.
  EXPECT_THROW(model->forward(x, {space.at(5), 4, nullptr}), Error);
  EXPECT_THROW(make_model({"no-such-model"}), Error);
}

// Recalibrating one sub-model's statistics restarts only its row: the others keep theirs.
TEST(Models, RecalibrationRestartsOnlyTheRowsItUses) {
  auto model = make_model({"fmnist-resnet", BnStats::per_submodel, 1});
  const SubModelSpace& space = model->space();
  NoGradGuard no_grad;
  model->forward(random_tensor({4, 1, 28, 28}, 4), {space.at(5), 5, nullptr});
  model->forward(random_tensor({4, 1, 28, 28}, 5), {space.at(9), 9, nullptr});
  BatchNorm2d* bn = model->batch_norms()[0];
  const std::vector<float> mean5 = to_vector<float>(bn->running_mean.select(0, 5)),
                           var5 = to_vector<float>(bn->running_var.select(0, 5));
  const Tensor a = random_tensor({4, 1, 28, 28}, 6), b = random_tensor({4, 1, 28, 28}, 7);
  for (BatchNorm2d* each : model->batch_norms()) each->begin_recalibration();
  model->forward(a, {space.at(9), 9, nullptr});
  model->forward(b, {space.at(9), 9, nullptr});
  for (BatchNorm2d* each : model->batch_norms()) each->end_recalibration();
  testing::expect_close(bn->running_mean.select(0, 5), mean5, 0.f);
  testing::expect_close(bn->running_var.select(0, 5), var5, 0.f);
  // Row 9 is the plain average of the two batches' statistics, as if it had started from nothing:
  // also from a row of NaN (0 · NaN would keep it, so the row must be reset, not only outweighed).
  const std::vector<float> recalibrated = to_vector<float>(bn->running_mean.select(0, 9));
  for (BatchNorm2d* each : model->batch_norms()) {
    each->running_mean.select(0, 9).fill_(std::numeric_limits<float>::quiet_NaN());
    each->running_var.select(0, 9).fill_(std::numeric_limits<float>::quiet_NaN());
  }
  for (BatchNorm2d* each : model->batch_norms()) each->begin_recalibration();
  model->forward(a, {space.at(9), 9, nullptr});
  model->forward(b, {space.at(9), 9, nullptr});
  for (BatchNorm2d* each : model->batch_norms()) each->end_recalibration();
  testing::expect_close(bn->running_mean.select(0, 9), recalibrated, 1e-6f);
  for (float v : to_vector<float>(bn->running_var.select(0, 9))) ASSERT_TRUE(std::isfinite(v));
  // ... and that average: the mean of the two batches' channel means (the stem's output).
  ForwardContext ctx{space.at(9), 9, nullptr};
  const int64_t C = bn->running_mean.size(1);
  auto conv = model->named_parameters()[0];  // stem.weight
  ASSERT_EQ(conv.first, "stem.weight");
  std::vector<double> expected(size_t(C), 0.0);
  const int64_t c9 = space.at(9).scaled("width", C);
  for (const Tensor& batch : {a, b}) {
    Tensor h = conv2d(batch, conv.second->tensor.narrow(0, 0, c9), Tensor(), Conv2dGeometry{1, 1, 1, 1});
    const std::vector<float> m = to_vector<float>(mean(h, {0, 2, 3}));
    for (int64_t c = 0; c < c9; ++c) expected[size_t(c)] += 0.5 * double(m[size_t(c)]);
  }
  const std::vector<float> got = to_vector<float>(bn->running_mean.select(0, 9));
  for (int64_t c = 0; c < c9; ++c) EXPECT_NEAR(got[size_t(c)], expected[size_t(c)], 1e-4) << "channel " << c;
}

}  // namespace
}  // namespace sn
