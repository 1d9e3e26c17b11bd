// kernels/backend.cpp — default (missing-kernel) implementations and the backend registry.
#include "kernels/backend.h"

#include "kernels/cpu/cpu_backend.h"
#ifdef SN_WITH_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace sn {
namespace {
Backend* g_backends[kDeviceTypes] = {nullptr, nullptr};
}

const char* unary_name(Unary op) {
  static const char* names[] = {"neg",  "exp",  "log",  "sqrt", "abs",     "relu",  "gelu",
                                "gelu_tanh", "silu", "tanh", "sigmoid", "square"};
  return names[int(op)];
}

const char* binary_name(Binary op) {
  static const char* names[] = {"add", "sub", "mul", "div"};
  return names[int(op)];
}

Tensor scratch_tensor(const Shape& sizes, Device device) {
  auto storage = std::make_shared<Storage>(size_t(numel_of(sizes)) * sizeof(float), device);
  return Tensor::from_storage(storage, sizes, contiguous_strides(sizes), 0, DType::f32);
}

Backend& backend_for(Device device) {
  if (device.is_cpu()) {
    static CpuBackend cpu;
    return cpu;
  }
#ifdef SN_WITH_CUDA
  if (device.is_cuda() && !g_backends[int(DeviceType::CUDA)]) register_backend(DeviceType::CUDA, &cuda_backend());
#endif
  Backend* b = g_backends[int(device.type)];
  SN_CHECK(b != nullptr, "backend_for", "no kernels for device ", device.str(),
           " (sortednet was built without this backend)");
  return *b;
}

void check_device(Device device) {
  if (device.is_cpu()) return;
#ifdef SN_WITH_CUDA
  const int count = cuda_device_count();
  SN_CHECK(count > 0, "device", "no CUDA device present (", device.str(), " requested)");
  SN_CHECK(device.index >= 0 && device.index < count, "device", device.str(), " requested, ", count,
           " CUDA device(s) present");
  // The allocator, the cuBLAS/cuDNN handles and the streams serve the current device only.
  SN_CHECK(device.index == 0, "device", device.str(), " requested: only cuda:0 is supported yet (select the GPU "
           "with CUDA_VISIBLE_DEVICES)");
  backend_for(device);
#else
  fail("device", device.str() + " requested, but sortednet was built without CUDA (configure with -DSN_CUDA=ON)");
#endif
}

MatmulPrecision parse_matmul_precision(const std::string& name) {
  if (name == "fp32") return MatmulPrecision::fp32;
  if (name == "tf32") return MatmulPrecision::tf32;
  if (name == "bf16") return MatmulPrecision::bf16;
  fail("config", "train.precision must be \"fp32\", \"tf32\" or \"bf16\", got \"" + name + "\"");
}

void set_matmul_precision(MatmulPrecision precision) {
#ifdef SN_WITH_CUDA
  set_cuda_tf32(precision != MatmulPrecision::fp32);
  set_cuda_bf16(precision == MatmulPrecision::bf16);
#else
  (void)precision;
#endif
}

void apply_matmul_precision(const std::string& recipe_precision) {
  set_matmul_precision(parse_matmul_precision(recipe_precision));
#ifdef SN_WITH_CUDA
  apply_cuda_precision_environment();
#endif
}

MatmulPrecision matmul_precision() {
#ifdef SN_WITH_CUDA
  if (cuda_bf16()) return MatmulPrecision::bf16;
  return cuda_tf32() ? MatmulPrecision::tf32 : MatmulPrecision::fp32;
#else
  return MatmulPrecision::tf32;  // the default setting; the CPU computes in fp32 regardless
#endif
}

void register_backend(DeviceType type, Backend* backend) { g_backends[int(type)] = backend; }

#define SN_MISSING(kernel) fail(kernel, std::string("not implemented on the ") + name() + " backend")

void Backend::copy(const Tensor&, const Tensor&) { SN_MISSING("copy"); }
void Backend::fill(const Tensor&, float) { SN_MISSING("fill"); }
void Backend::fill_uniform(const Tensor&, const Generator&, uint64_t) { SN_MISSING("fill_uniform"); }
void Backend::fill_normal(const Tensor&, const Generator&, uint64_t) { SN_MISSING("fill_normal"); }
void Backend::dropout_mask(const Tensor&, float, const Generator&, uint64_t) { SN_MISSING("dropout_mask"); }
void Backend::unary(Unary, const Tensor&, const Tensor&) { SN_MISSING("unary"); }
void Backend::unary_backward(Unary, const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  SN_MISSING("unary_backward");
}
void Backend::binary(Binary, const Tensor&, const Tensor&, const Tensor&) { SN_MISSING("binary"); }
void Backend::affine(const Tensor&, const Tensor&, float, float) { SN_MISSING("affine"); }
void Backend::axpy(const Tensor&, float, const Tensor&) { SN_MISSING("axpy"); }
void Backend::sum_to(const Tensor&, const Tensor&, bool) { SN_MISSING("sum_to"); }
void Backend::gemm(const Tensor&, const Tensor&, const Tensor&, float, float) { SN_MISSING("gemm"); }
void Backend::softmax(const Tensor&, const Tensor&, bool) { SN_MISSING("softmax"); }
void Backend::softmax_backward(const Tensor&, const Tensor&, const Tensor&, bool) {
  SN_MISSING("softmax_backward");
}
void Backend::cross_entropy(const Tensor&, const Tensor&, const Tensor&, const Tensor&, int64_t, float) {
  SN_MISSING("cross_entropy");
}
void Backend::cross_entropy_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                     const Tensor&, int64_t, float) {
  SN_MISSING("cross_entropy_backward");
}
void Backend::layer_norm(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         const Tensor&, float, bool) {
  SN_MISSING("layer_norm");
}
void Backend::layer_norm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                  const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool) {
  SN_MISSING("layer_norm_backward");
}
void Backend::batch_norm_stats(const Tensor&, const Tensor&, const Tensor&) { SN_MISSING("batch_norm_stats"); }
void Backend::batch_norm_apply(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                               const Tensor&, const Tensor&) {
  SN_MISSING("batch_norm_apply");
}
void Backend::batch_norm_apply_relu(const Tensor& y, const Tensor& x, const Tensor& mean, const Tensor& invstd,
                                    const Tensor& w, const Tensor& b, const Tensor& residual) {
  batch_norm_apply(y, x, mean, invstd, w, b);
  if (residual.defined()) binary(Binary::add, y, y, residual);
  unary(Unary::relu, y, y);
}
void Backend::batch_norm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                                  const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool) {
  SN_MISSING("batch_norm_backward");
}
void Backend::batch_norm_relu_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dres,
                                       const Tensor& dy, const Tensor& y, const Tensor& x, const Tensor& mean,
                                       const Tensor& invstd, const Tensor& w, bool training) {
  const Tensor masked = dres.defined() ? dres : scratch_tensor(y.sizes(), y.device());
  unary_backward(Unary::relu, masked, dy, y, y);
  batch_norm_backward(dx, dw, db, masked, x, mean, invstd, w, training);
}
void Backend::conv2d(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Conv2dGeometry&) {
  SN_MISSING("conv2d");
}
void Backend::conv2d_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                              const Tensor&, const Tensor&, const Conv2dGeometry&) {
  SN_MISSING("conv2d_backward");
}
void Backend::max_pool2d(const Tensor&, const Tensor&, const Tensor&, const Pool2dGeometry&) {
  SN_MISSING("max_pool2d");
}
void Backend::max_pool2d_backward(const Tensor&, const Tensor&, const Tensor&) {
  SN_MISSING("max_pool2d_backward");
}
void Backend::avg_pool2d(const Tensor&, const Tensor&, const Pool2dGeometry&) { SN_MISSING("avg_pool2d"); }
void Backend::avg_pool2d_backward(const Tensor&, const Tensor&, const Pool2dGeometry&) {
  SN_MISSING("avg_pool2d_backward");
}
void Backend::sgd_step(const Tensor&, const Tensor&, const Tensor&, float, float, float, bool) {
  SN_MISSING("sgd_step");
}
void Backend::adamw_step(const Tensor&, const Tensor&, const Tensor&, const Tensor&, float, float, float,
                         float, float, float, float) {
  SN_MISSING("adamw_step");
}
void Backend::embedding(const Tensor&, const Tensor&, const Tensor&) { SN_MISSING("embedding"); }
void Backend::embedding_backward(const Tensor&, const Tensor&, const Tensor&) {
  SN_MISSING("embedding_backward");
}

}  // namespace sn
