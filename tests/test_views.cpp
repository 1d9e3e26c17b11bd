// tests/test_views.cpp — view geometry, aliasing, broadcasting and shape errors.
#include <gtest/gtest.h>

#include "test_util.h"

namespace sn {
namespace {

Tensor iota(const Shape& sizes) {
  std::vector<float> v(size_t(numel_of(sizes)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  return from_vector(v, sizes);
}

TEST(Views, NarrowSharesStorageWithOffset) {
  Tensor t = iota({4, 5});
  Tensor n = t.narrow(0, 1, 2).narrow(1, 2, 3);
  EXPECT_EQ(n.sizes(), (Shape{2, 3}));
  EXPECT_EQ(n.strides(), (Shape{5, 1}));
  EXPECT_EQ(n.offset(), 7);
  EXPECT_EQ(n.storage(), t.storage());
  EXPECT_EQ(to_vector<float>(n), (std::vector<float>{7, 8, 9, 12, 13, 14}));
  EXPECT_FALSE(n.is_contiguous());
}

TEST(Views, PrefixEqualsChainedNarrow) {
  Tensor w = iota({6, 7, 3});
  Tensor a = w.prefix({4, 5});
  Tensor b = w.narrow(0, 0, 4).narrow(1, 0, 5);
  EXPECT_EQ(a.sizes(), b.sizes());
  EXPECT_EQ(a.strides(), b.strides());
  EXPECT_EQ(a.offset(), b.offset());
  EXPECT_EQ(w.prefix({-1, 2}).sizes(), (Shape{6, 2, 3}));
}

TEST(Views, WritesThroughAViewReachTheBase) {
  Tensor t = zeros({3, 4});
  t.narrow(1, 1, 2).fill_(5.f);
  EXPECT_EQ(to_vector<float>(t), (std::vector<float>{0, 5, 5, 0, 0, 5, 5, 0, 0, 5, 5, 0}));
  EXPECT_GT(t.version(), 0u);  // the view's write bumps the shared version
}

TEST(Views, SliceSelectTransposePermute) {
  Tensor t = iota({2, 3, 4});
  EXPECT_EQ(to_vector<float>(t.slice(2, 0, 4, 2).select(0, 1)),
            (std::vector<float>{12, 14, 16, 18, 20, 22}));
  Tensor tt = t.transpose(0, 2);
  EXPECT_EQ(tt.sizes(), (Shape{4, 3, 2}));
  EXPECT_EQ(tt.strides(), (Shape{1, 4, 12}));
  Tensor p = t.permute({1, 2, 0});
  EXPECT_EQ(p.sizes(), (Shape{3, 4, 2}));
  EXPECT_EQ(to_vector<float>(p.select(0, 2).select(0, 3)), (std::vector<float>{11, 23}));
  EXPECT_EQ(to_vector<float>(t.slice(1, -2, 3).select(2, 0)), (std::vector<float>{4, 8, 16, 20}));
}

TEST(Views, ViewAndReshape) {
  Tensor t = iota({2, 3, 4});
  Tensor v = t.view({6, -1});
  EXPECT_EQ(v.sizes(), (Shape{6, 4}));
  EXPECT_EQ(v.storage(), t.storage());
  // A narrowed inner dim cannot be merged with its outer dim...
  Tensor n = t.narrow(2, 0, 2);
  EXPECT_THROW(n.view({12}), Error);
  // ...but merging the outer dims of the window is fine.
  EXPECT_EQ(n.view({6, 2}).strides(), (Shape{4, 1}));
  Tensor r = n.reshape({12});  // reshape copies
  EXPECT_NE(r.storage(), t.storage());
  EXPECT_EQ(to_vector<float>(r)[2], 4.f);
  EXPECT_EQ(t.transpose(0, 1).view({3, 2, 2, 2}).sizes(), (Shape{3, 2, 2, 2}));
  EXPECT_THROW(t.view({5, -1}), Error);
  EXPECT_EQ(t.flatten(1).sizes(), (Shape{2, 12}));
  EXPECT_EQ(t.unsqueeze(1).squeeze(1).sizes(), t.sizes());
}

TEST(Views, ExpandBroadcasts) {
  Tensor t = iota({3, 1});
  Tensor e = t.expand({2, 3, 4});
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  EXPECT_EQ(to_vector<float>(e.select(0, 1).select(0, 2)), (std::vector<float>{2, 2, 2, 2}));
  EXPECT_THROW(t.expand({3, 2, 5}).narrow(0, 0, 1).view({-1}), Error);
  EXPECT_THROW(iota({3, 2}).expand({3, 4}), Error);
  EXPECT_EQ(broadcast_shapes({4, 1, 3}, {2, 1}, "test"), (Shape{4, 2, 3}));
  EXPECT_THROW(broadcast_shapes({4, 3}, {2, 3}, "test"), Error);
}

TEST(Views, AsStridedAndOverlap) {
  Tensor t = iota({10});
  Tensor w = t.as_strided({3, 3}, {1, 1}, 2);  // sliding windows
  EXPECT_EQ(to_vector<float>(w), (std::vector<float>{2, 3, 4, 3, 4, 5, 4, 5, 6}));
  EXPECT_FALSE(w.is_non_overlapping());
  EXPECT_THROW(t.as_strided({20}, {1}, 0), Error);  // past the storage
  Tensor p = iota({10});
  p.set_requires_grad(true);
  EXPECT_THROW(p.as_strided({3, 3}, {1, 1}, 0), Error);  // overlapping view of a parameter
  // A reach whose byte count wraps past 2^64 (2^62 elements of 4 bytes) is past the storage too.
  EXPECT_THROW(t.as_strided({2}, {(int64_t(1) << 62) - 1}, 0), Error);
  // Writing into elements that share memory would leave whichever write came last.
  EXPECT_THROW(iota({1}).expand({4}).copy_(iota({4})), Error);
}

TEST(Views, ErrorsNameTheOpAndShapes) {
  Tensor t = iota({4, 5});
  try {
    t.narrow(1, 3, 4);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("narrow"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 5]"), std::string::npos) << m;
  }
  EXPECT_THROW(t.select(0, 4), Error);
  EXPECT_THROW(t.transpose(0, 2), Error);
  EXPECT_THROW(t.permute({0, 0}), Error);
  EXPECT_THROW(t.prefix({5}), Error);
  try {
    matmul(t, t);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("matmul"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 5] @ [4, 5]"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace sn
