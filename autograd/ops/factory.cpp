// autograd/ops/factory.cpp — tensor factories and host read-back.
#include <cstring>

#include "autograd/ops/common.h"

namespace sn {

namespace {

// A new contiguous tensor over storage from `make(bytes)`; errors name the tensor, not only the bytes.
template <class Make>
Tensor allocate_tensor(const Shape& sizes, DType dtype, Device device, const char* op, Make make) {
  for (int64_t s : sizes) SN_CHECK(s >= 0, op, "negative size in ", shape_str(sizes));
  int64_t n = 1, bytes = 0;
  for (int64_t s : sizes)
    SN_CHECK(!__builtin_mul_overflow(n, s, &n), op, "shape ", shape_str(sizes), " has too many elements");
  SN_CHECK(!__builtin_mul_overflow(n, int64_t(element_size(dtype)), &bytes), op, "shape ", shape_str(sizes),
           " is too large");
  std::shared_ptr<Storage> storage;
  try {
    storage = make(size_t(bytes));
  } catch (const Error& e) {
    fail(op, detail::concat("cannot allocate a ", shape_str(sizes), " ", dtype_name(dtype), " tensor (", bytes,
                            " bytes) on ", device.str(), ": ", e.what()));
  } catch (const std::bad_alloc&) {
    fail(op, detail::concat("cannot allocate a ", shape_str(sizes), " ", dtype_name(dtype), " tensor (", bytes,
                            " bytes) on ", device.str(), ": out of memory"));
  }
  return Tensor::from_storage(std::move(storage), sizes, contiguous_strides(sizes), 0, dtype);
}

}  // namespace

Tensor empty(const Shape& sizes, DType dtype, Device device) {
  backend_for(device);  // a backend registers its device allocator on first use
  return allocate_tensor(sizes, dtype, device, "empty",
                         [&](size_t bytes) { return std::make_shared<Storage>(bytes, device); });
}

Tensor empty_pinned(const Shape& sizes, DType dtype) {
  return allocate_tensor(sizes, dtype, Device::cpu(), "empty_pinned",
                         [](size_t bytes) { return Storage::pinned_host(bytes); });
}

Tensor full(const Shape& sizes, float value, DType dtype, Device device) {
  Tensor t = empty(sizes, dtype, device);
  backend_for(device).fill(t, value);
  return t;
}

Tensor zeros(const Shape& sizes, DType dtype, Device device) { return full(sizes, 0.f, dtype, device); }
Tensor ones(const Shape& sizes, DType dtype, Device device) { return full(sizes, 1.f, dtype, device); }
Tensor empty_like(const Tensor& t) { return empty(t.sizes(), t.dtype(), t.device()); }
Tensor zeros_like(const Tensor& t) { return zeros(t.sizes(), t.dtype(), t.device()); }

template <class T>
static Tensor from_host(const std::vector<T>& values, const Shape& sizes) {
  SN_CHECK(int64_t(values.size()) == numel_of(sizes), "from_vector", values.size(),
           " values do not fill shape ", shape_str(sizes));
  Tensor t = empty(sizes, dtype_of<T>());
  if (!values.empty()) std::memcpy(t.data_ptr(), values.data(), values.size() * sizeof(T));
  return t;
}

Tensor from_vector(const std::vector<float>& values, const Shape& sizes) { return from_host(values, sizes); }
Tensor from_vector(const std::vector<int64_t>& values, const Shape& sizes) { return from_host(values, sizes); }

Tensor arange(int64_t n, DType dtype) {
  std::vector<int64_t> v(size_t(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = i;
  Tensor t = from_vector(v, {n});
  return dtype == DType::i64 ? t : t.to(dtype);
}

Tensor rand(const Shape& sizes, Generator& gen, Device device) {
  Tensor t = empty(sizes, DType::f32, device);
  uint64_t first = gen.reserve_blocks(uint64_t(t.numel() + 3) / 4);
  backend_for(device).fill_uniform(t, gen, first);
  return t;
}

Tensor randn(const Shape& sizes, Generator& gen, Device device) {
  Tensor t = empty(sizes, DType::f32, device);
  uint64_t first = gen.reserve_blocks(uint64_t(t.numel() + 3) / 4);
  backend_for(device).fill_normal(t, gen, first);
  return t;
}

template <class T>
std::vector<T> to_vector(const Tensor& t) {
  SN_CHECK(t.defined(), "to_vector", "undefined tensor");
  Tensor host = t.to(Device::cpu());
  Tensor packed = empty(host.sizes(), dtype_of<T>());
  backend_for(Device::cpu()).copy(packed, host.detach());
  std::vector<T> out(size_t(packed.numel()));
  if (!out.empty()) std::memcpy(out.data(), packed.data_ptr(), out.size() * sizeof(T));
  return out;
}

template std::vector<float> to_vector<float>(const Tensor&);
template std::vector<int64_t> to_vector<int64_t>(const Tensor&);
template std::vector<int32_t> to_vector<int32_t>(const Tensor&);

}  // namespace sn
