// nn/submodel.cpp — axes, sub-models and their text form.
#include "nn/submodel.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>

#include "core/error.h"

namespace sn {

std::string Axis::format(int64_t value) const {
  if (denominator > 0) return std::to_string(value) + "/" + std::to_string(denominator);
  return std::to_string(value);
}

std::string trim_spaces(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

int64_t Axis::parse(const std::string& raw) const {
  const std::string text = trim_spaces(raw);
  int64_t value = -1;
  try {
    size_t used = 0;
    auto slash = text.find('/');
    if (slash != std::string::npos) {
      int64_t num = std::stoll(text.substr(0, slash), &used);
      if (used != slash) throw std::invalid_argument("numerator");
      int64_t den = std::stoll(text.substr(slash + 1), &used);
      if (used != text.size() - slash - 1 || den <= 0) throw std::invalid_argument("denominator");
      int64_t scale = denominator > 0 ? denominator : max(), product = 0;
      if (__builtin_mul_overflow(num, scale, &product)) throw std::out_of_range("numerator");
      if (product % den == 0) value = product / den;
    } else if (text.find('.') != std::string::npos) {
      double f = std::stod(text, &used);
      if (used != text.size()) throw std::invalid_argument("fraction");
      double scaled = f * double(denominator > 0 ? denominator : max());
      if (!(std::fabs(scaled) < 9e15)) throw std::out_of_range("fraction");  // NaN too
      if (std::fabs(scaled - std::round(scaled)) < 1e-9) value = int64_t(std::round(scaled));
    } else {
      value = std::stoll(text, &used);
      if (used != text.size()) throw std::invalid_argument("integer");
    }
  } catch (const std::exception&) {
    fail("submodel", "axis '" + name + "': cannot read '" + text + "' as a size");
  }
  if (std::find(sizes.begin(), sizes.end(), value) == sizes.end()) {
    std::string allowed;
    for (int64_t s : sizes) allowed += (allowed.empty() ? "" : ", ") + format(s);
    const bool fraction = text.find_first_of("./") != std::string::npos;
    fail("submodel", "axis '" + name + "': '" + text + "' is not an allowed size (allowed: " + allowed +
                         (fraction ? "; k/d and decimals are fractions of the full size " + format(max()) : "") + ")");
  }
  return value;
}

namespace {

// The position of `values` in the grid of `axes` (the last axis varies fastest), or -1 when a value
// is not one of its axis's sizes or the counts differ.
int64_t grid_index(const AxisList& axes, const std::vector<int64_t>& values) {
  if (values.size() != axes.size()) return -1;
  int64_t index = 0;
  for (size_t i = 0; i < axes.size(); ++i) {
    const auto& sizes = axes[i].sizes;
    const auto it = std::find(sizes.begin(), sizes.end(), values[i]);
    if (it == sizes.end()) return -1;
    index = index * int64_t(sizes.size()) + (it - sizes.begin());
  }
  return index;
}

}  // namespace

SubModel::SubModel(std::shared_ptr<const AxisList> axes, std::vector<int64_t> values)
    : axes_(std::move(axes)), values_(std::move(values)) {
  SN_CHECK(axes_ != nullptr && values_.size() == axes_->size(), "submodel", "needs one size per axis (",
           values_.size(), " for ", axes_ ? axes_->size() : 0, " axes)");
}

const AxisList& SubModel::axes() const {
  SN_CHECK(axes_ != nullptr, "submodel", "an empty (default-constructed) SubModel has no axes");
  return *axes_;
}

int64_t SubModel::index() const {
  const int64_t index = grid_index(axes(), values_);
  SN_CHECK(index >= 0, "submodel", "'", str(), "' has a size its axis does not allow");
  return index;
}

int64_t SubModel::get(const std::string& name) const {
  for (size_t i = 0; i < axes().size(); ++i)
    if ((*axes_)[i].name == name) return values_[i];
  fail("submodel", "no axis named '" + name + "' in " + str());
}

double SubModel::fraction(const std::string& name) const {
  for (size_t i = 0; i < axes().size(); ++i)
    if ((*axes_)[i].name == name) return double(values_[i]) / double((*axes_)[i].max());
  fail("submodel", "no axis named '" + name + "' in " + str());
}

int64_t SubModel::scaled(const std::string& name, int64_t full) const {
  for (size_t i = 0; i < axes().size(); ++i)
    if ((*axes_)[i].name == name) return full * values_[i] / (*axes_)[i].max();
  fail("submodel", "no axis named '" + name + "' in " + str());
}

std::string SubModel::str() const {
  if (!axes_) return "";
  std::string s;
  for (size_t i = 0; i < axes_->size(); ++i) {
    if (i) s += ",";
    s += (*axes_)[i].name + "=" + (*axes_)[i].format(values_[i]);
  }
  return s;
}

bool SubModel::nested_in(const SubModel& other) const {
  SN_CHECK(values_.size() == other.values_.size(), "submodel", "'", str(), "' and '", other.str(),
           "' are not of one space");
  for (size_t i = 0; i < values_.size(); ++i)
    if (values_[i] > other.values_[i]) return false;
  return true;
}

SubModelSpace::SubModelSpace(AxisList axes) {
  for (const Axis& a : axes) {
    SN_CHECK(!a.sizes.empty() && a.sizes[0] > 0 &&
                 std::adjacent_find(a.sizes.begin(), a.sizes.end(), std::greater_equal<int64_t>()) == a.sizes.end(),
             "SubModelSpace", "axis '", a.name, "' needs strictly ascending positive sizes");
    for (const Axis& b : axes)
      SN_CHECK(&a == &b || a.name != b.name, "SubModelSpace", "axis '", a.name, "' declared twice");
  }
  axes_ = std::make_shared<const AxisList>(std::move(axes));
}

int64_t SubModelSpace::size() const {
  int64_t n = 1;
  for (const Axis& a : *axes_) n *= int64_t(a.sizes.size());
  return n;
}

SubModel SubModelSpace::at(int64_t index) const {
  SN_CHECK(index >= 0 && index < size(), "SubModelSpace", "index ", index, " outside [0, ", size(), ")");
  std::vector<int64_t> values(axes_->size());
  for (int64_t i = int64_t(axes_->size()) - 1; i >= 0; --i) {
    const auto& sizes = (*axes_)[size_t(i)].sizes;
    values[size_t(i)] = sizes[size_t(index % int64_t(sizes.size()))];
    index /= int64_t(sizes.size());
  }
  return SubModel(axes_, std::move(values));
}

int64_t SubModelSpace::index_of(const SubModel& sub) const {
  const int64_t index = grid_index(*axes_, sub.values());
  SN_CHECK(index >= 0, "SubModelSpace", "sub-model ", sub.str(), " is not in the space");
  return index;
}

std::vector<SubModel> SubModelSpace::enumerate() const {
  std::vector<SubModel> all;
  all.reserve(size_t(size()));
  for (int64_t i = 0; i < size(); ++i) all.push_back(at(i));
  return all;
}

SubModel SubModelSpace::largest() const { return at(size() - 1); }
SubModel SubModelSpace::smallest() const { return at(0); }

SubModel SubModelSpace::parse(const std::string& text) const {
  std::vector<int64_t> values;
  for (const Axis& a : *axes_) values.push_back(a.max());
  std::vector<bool> named(axes_->size(), false);
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    part = trim_spaces(part);
    if (part.empty()) continue;
    auto eq = part.find('=');
    SN_CHECK(eq != std::string::npos, "submodel", "'", part, "' is not axis=size (in '", text, "')");
    std::string name = trim_spaces(part.substr(0, eq));
    size_t i = 0;
    while (i < axes_->size() && (*axes_)[i].name != name) ++i;
    if (i == axes_->size()) {
      std::string known;
      for (const Axis& a : *axes_) known += (known.empty() ? "" : ", ") + a.name;
      fail("submodel", "unknown axis '" + name + "' (axes: " + known + ")");
    }
    SN_CHECK(!named[i], "submodel", "axis '", name, "' is given twice in '", text, "'");
    named[i] = true;
    values[i] = (*axes_)[i].parse(part.substr(eq + 1));
  }
  return SubModel(axes_, std::move(values));
}

}  // namespace sn
