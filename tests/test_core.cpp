// tests/test_core.cpp — dtypes, devices, the counter-based RNG and the caching allocator.
#include <gtest/gtest.h>

#include <set>

#include "core/allocator.h"
#include "test_util.h"

namespace sn {
namespace {

TEST(DTypes, Bf16RoundsToNearestEven) {
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(bf16_to_float(float_to_bf16(-2.5f)), -2.5f);
  // 1 + 2^-8 is halfway between two bf16 values: ties go to the even one (1.0).
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.00390625f)), 1.0f);
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.01171875f)), 1.015625f);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  Tensor t = from_vector(std::vector<float>{0.1f, 3.14159f, -7.f}, {3});
  auto back = to_vector<float>(t.to(DType::bf16).to(DType::f32));
  for (size_t i = 0; i < back.size(); ++i) EXPECT_NEAR(back[i], to_vector<float>(t)[i], 0.01f * std::fabs(back[i]));
  EXPECT_EQ(element_size(DType::bf16), 2u);
}

TEST(DTypes, IntegerTensors) {
  Tensor i = arange(5, DType::i32);
  EXPECT_EQ(i.dtype(), DType::i32);
  EXPECT_EQ(to_vector<int64_t>(i), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_THROW(i.data<float>(), Error);
}

TEST(Devices, ParseAndPrint) {
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_EQ(Device::parse("cuda:1"), Device::cuda(1));
  EXPECT_EQ(Device::cuda(2).str(), "cuda:2");
  EXPECT_THROW(Device::parse("tpu"), Error);
  EXPECT_THROW(Device::parse("cuda:x"), Error);
}

TEST(Rng, PhiloxKnownAnswer) {
  // Published Philox-4x32-10 test vector (counter 0, key 0).
  auto r = philox4x32({0, 0, 0, 0}, {0, 0});
  EXPECT_EQ(r[0], 0x6627e8d5u);
  EXPECT_EQ(r[1], 0xe169c58du);
  EXPECT_EQ(r[2], 0xbc57ac4cu);
  EXPECT_EQ(r[3], 0x9b00dbd8u);
}

TEST(Rng, ReproducibleAndSplittable) {
  Generator a(42), b(42);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next_u32(), b.next_u32());
  Generator s1 = a.split(1), s2 = a.split(2), s1b = b.split(1);
  EXPECT_EQ(s1.next_u64(), s1b.next_u64());
  EXPECT_NE(Generator(42).split(1).next_u64(), s2.next_u64());
  // State round-trips mid-block: a restored generator continues the same sequence exactly.
  Generator c(7);
  for (int used = 0; used < 6; ++used) {
    Generator restored(c.state()), original = c;
    for (int i = 0; i < 9; ++i) ASSERT_EQ(restored.next_u32(), original.next_u32()) << used;
    c.next_u32();
  }
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(c.below(1000000));
  EXPECT_GT(seen.size(), 990u);
}

TEST(Rng, NormalAndUniformMoments) {
  Generator gen(3);
  auto u = to_vector<float>(rand({20000}, gen));
  auto n = to_vector<float>(randn({20001}, gen));
  double mu = 0, mn = 0, vn = 0;
  for (float x : u) {
    ASSERT_GE(x, 0.f);
    ASSERT_LT(x, 1.f);
    mu += x;
  }
  for (float x : n) mn += x;
  mn /= double(n.size());
  for (float x : n) vn += (x - mn) * (x - mn);
  vn /= double(n.size());
  EXPECT_NEAR(mu / double(u.size()), 0.5, 0.01);
  EXPECT_NEAR(mn, 0.0, 0.03);
  EXPECT_NEAR(vn, 1.0, 0.05);
  Generator g1(9), g2(9);
  EXPECT_EQ(to_vector<float>(randn({7}, g1)), to_vector<float>(randn({7}, g2)));
}

TEST(Allocator, CachesFreedBlocks) {
  Allocator& a = allocator_for(Device::cpu());
  { Tensor t = empty({1000, 37}); }
  a.reset_stats();
  for (int i = 0; i < 5; ++i) Tensor t = empty({1000, 37});
  AllocatorStats s = a.stats();
  EXPECT_EQ(s.requests, 5u);
  EXPECT_EQ(s.cache_hits, 5u);
  EXPECT_EQ(s.system_allocs, 0u);
}

TEST(Allocator, HugeRequestIsAnErrorNamingTheSize) {
  try {
    empty({int64_t(1) << 45});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("140737488355328"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sn
