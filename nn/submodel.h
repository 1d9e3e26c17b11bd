// nn/submodel.h — the sorted-axis model: named axes, sub-models (one size per axis, printed as
// one short line such as "width=4/8,depth.s1=2") and the grid of all sub-models.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sn {

// A sorted axis: a sub-model keeps the first k units along it (neurons, channels, heads,
// blocks). Allowed sizes strictly ascend; the last is the full model's.
struct Axis {
  std::string name;
  std::vector<int64_t> sizes;
  // > 0: sizes are fractions of the full width and print as "k/denominator".
  int64_t denominator = 0;

  int64_t max() const { return sizes.back(); }
  std::string format(int64_t value) const;
  // Parses "k", "k/d" or a decimal fraction; must be one of the allowed sizes. An integer is a
  // size; k/d and a decimal are fractions of the full size ("width=1" is 1 unit, "width=1.0" all).
  // Spaces around the text are ignored.
  int64_t parse(const std::string& text) const;
};

// text without the spaces and tabs around it.
std::string trim_spaces(const std::string& text);

using AxisList = std::vector<Axis>;

class SubModel {
 public:
  SubModel() = default;  // empty: only assignable; asking it anything is an sn::Error
  SubModel(std::shared_ptr<const AxisList> axes, std::vector<int64_t> values);

  // The size on axis `name` (an sn::Error if the space has no such axis).
  int64_t get(const std::string& name) const;
  // get(name) / the axis maximum: the kept fraction.
  double fraction(const std::string& name) const;
  // first k of `full` for a fractional axis: full * value / max.
  int64_t scaled(const std::string& name, int64_t full) const;
  const std::vector<int64_t>& values() const { return values_; }
  const AxisList& axes() const;
  // The position in its space's grid (SubModelSpace::at(index()) is this sub-model).
  int64_t index() const;

  std::string str() const;  // "width=4/8,depth.s1=2"
  // a ⊆ b: every axis of a is at most b's (then θ(a) ⊂ θ(b)); both of one space.
  bool nested_in(const SubModel& other) const;
  bool operator==(const SubModel& other) const { return values_ == other.values_; }

 private:
  std::shared_ptr<const AxisList> axes_;
  std::vector<int64_t> values_;
};

// The grid of allowed sub-models (the product of the axes' sizes). Index order: the last axis
// varies fastest.
class SubModelSpace {
 public:
  SubModelSpace() = default;
  explicit SubModelSpace(AxisList axes);

  const AxisList& axes() const { return *axes_; }
  int64_t size() const;
  SubModel at(int64_t index) const;
  int64_t index_of(const SubModel& sub) const;
  std::vector<SubModel> enumerate() const;
  SubModel largest() const;
  SubModel smallest() const;
  // "width=4/8,depth.s2=1": axes not named keep their maximum. Errors name the bad part.
  SubModel parse(const std::string& text) const;

 private:
  std::shared_ptr<const AxisList> axes_;
};

}  // namespace sn
