// kernels/cuda/conv_cudnn.cu — 2-d convolution through cuDNN (built when cuDNN is found).
//
// cuDNN takes activations with any NCHW strides, but a filter only packed: a nested window of a
// larger filter is packed first (a copy of at most Cout·Cin·KH·KW floats, small beside the
// activations), and dW is computed into a packed buffer and added into the window. The algorithm
// for each geometry is chosen once by timing cuDNN's candidates (as PyTorch's cudnn.benchmark),
// within a workspace limit, and cached; with TF32 off only full-precision (GEMM-based) ones.
#include <cudnn.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "kernels/cuda/conv.h"
#include "kernels/cuda/launch.cuh"

namespace sn {
namespace cuda {
namespace {

#define SN_CUDNN_CHECK(expr)                                                                        \
  do {                                                                                              \
    cudnnStatus_t sn_st_ = (expr);                                                                  \
    if (sn_st_ != CUDNN_STATUS_SUCCESS)                                                             \
      ::sn::fail("conv2d", std::string(#expr) + " failed: " + cudnnGetErrorString(sn_st_));        \
  } while (0)

constexpr size_t kWorkspaceLimit = size_t(256) << 20;

cudnnHandle_t handle() {
  thread_local cudnnHandle_t h = [] {
    cudnnHandle_t created = nullptr;
    SN_CUDNN_CHECK(cudnnCreate(&created));
    return created;
  }();
  SN_CUDNN_CHECK(cudnnSetStream(h, current_stream()));
  return h;
}

// The descriptors of one call, destroyed with it.
struct Descriptors {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Descriptors(const Tensor& xt, const Shape& wsizes, const Tensor& yt, const Conv2dGeometry& g) {
    SN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    SN_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    SN_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    SN_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    set_tensor(x, xt);
    set_tensor(y, yt);
    SN_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, int(wsizes[0]), int(wsizes[1]),
                                              int(wsizes[2]), int(wsizes[3])));
    SN_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, int(g.pad_h), int(g.pad_w), int(g.stride_h), int(g.stride_w),
                                                   int(g.dilation_h), int(g.dilation_w), CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT));
    SN_CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv, int(g.groups)));
    // DEFAULT lets cuDNN use TF32 tensor cores for fp32; FMA keeps full fp32 arithmetic.
    SN_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, cuda_tf32() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  }
  ~Descriptors() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  static void set_tensor(cudnnTensorDescriptor_t d, const Tensor& t) {
    SN_CUDNN_CHECK(cudnnSetTensor4dDescriptorEx(d, CUDNN_DATA_FLOAT, int(t.size(0)), int(t.size(1)), int(t.size(2)),
                                                int(t.size(3)), int(t.stride(0)), int(t.stride(1)), int(t.stride(2)),
                                                int(t.stride(3))));
  }
};

Tensor workspace(size_t bytes, Device device) { return scratch_tensor({int64_t((bytes + 3) / 4) + 1}, device); }

// What decides an algorithm: every size and stride of the call, the geometry and the math mode.
using Key = std::vector<int64_t>;
Key key_of(int pass, const Tensor& x, const Shape& w, const Tensor& y, const Conv2dGeometry& g) {
  Key k{pass, cuda_tf32() ? 1 : 0, g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dilation_h, g.dilation_w, g.groups};
  for (const Tensor* t : {&x, &y})
    for (int64_t d = 0; d < 4; ++d) k.insert(k.end(), {t->size(d), t->stride(d)});
  k.insert(k.end(), w.begin(), w.end());
  return k;
}

struct Choice {
  int algo = 0;
  size_t bytes = 0;
};
std::mutex g_mutex;
std::map<Key, Choice> g_choices;

// Whether an algorithm computes in full fp32 precision: the GEMM-based ones. FFT and Winograd
// transforms lose about three digits (measured: 3e-3 relative error in a ResNet's gradients, like
// TF32), so with TF32 off, where fp32 accuracy was asked for, they are not used.
bool full_precision(cudnnConvolutionFwdAlgo_t a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
}
bool full_precision(cudnnConvolutionBwdDataAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
}
bool full_precision(cudnnConvolutionBwdFilterAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ||
         a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
}

// The fastest successful candidate within the workspace limit (cuDNN sorts them by time).
template <class Perf>
Choice fastest(const Perf* perf, int n, const char* pass) {
  const bool strict = !cuda_tf32();
  for (int i = 0; i < n; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= kWorkspaceLimit &&
        (!strict || full_precision(perf[i].algo)))
      return {int(perf[i].algo), perf[i].memory};
  fail("conv2d", std::string("cuDNN found no ") + pass + " algorithm for this geometry");
}

template <class Find>
Choice choose(const Key& key, const char* pass, Find find) {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_choices.find(key);
    if (it != g_choices.end()) return it->second;
  }
  Choice c = find();
  std::lock_guard<std::mutex> lock(g_mutex);
  g_choices[key] = c;
  return c;
}

const float kOne = 1.f, kZero = 0.f;

}  // namespace

void conv2d_cudnn(const Tensor& y, const Tensor& x, const Tensor& w_in, const Conv2dGeometry& g) {
  const Tensor w = w_in.is_contiguous() ? w_in.detach() : w_in.contiguous().detach();
  Descriptors d(x, w.sizes(), y, g);
  const Choice c = choose(key_of(0, x, w.sizes(), y, g), "forward", [&] {
    Tensor ws = workspace(kWorkspaceLimit, x.device());
    Tensor probe = scratch_tensor(y.sizes(), y.device());
    Descriptors dp(x, w.sizes(), probe, g);
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    SN_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(handle(), dp.x, x.data_ptr(), dp.w, w.data_ptr(), dp.conv,
                                                          dp.y, probe.data_ptr(), CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n,
                                                          perf, ws.data_ptr(), kWorkspaceLimit));
    return fastest(perf, n, "forward");
  });
  Tensor ws = workspace(c.bytes, x.device());
  SN_CUDNN_CHECK(cudnnConvolutionForward(handle(), &kOne, d.x, x.data_ptr(), d.w, w.data_ptr(), d.conv,
                                         cudnnConvolutionFwdAlgo_t(c.algo), ws.data_ptr(), c.bytes, &kZero, d.y,
                                         y.data_ptr()));
}

void conv2d_backward_cudnn(const Tensor& dx, const Tensor& dw, const Tensor& dy, const Tensor& x, const Tensor& w_in,
                           const Conv2dGeometry& g, Backend& backend) {
  const Tensor w = w_in.is_contiguous() ? w_in.detach() : w_in.contiguous().detach();
  if (dx.defined()) {
    Descriptors d(dx, w.sizes(), dy, g);
    const Choice c = choose(key_of(1, dx, w.sizes(), dy, g), "backward-data", [&] {
      Tensor ws = workspace(kWorkspaceLimit, x.device());
      Tensor probe = scratch_tensor(dx.sizes(), dx.device());
      Descriptors dp(probe, w.sizes(), dy, g);
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      int n = 0;
      SN_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
          handle(), dp.w, w.data_ptr(), dp.y, dy.data_ptr(), dp.conv, dp.x, probe.data_ptr(),
          CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf, ws.data_ptr(), kWorkspaceLimit));
      return fastest(perf, n, "backward-data");
    });
    Tensor ws = workspace(c.bytes, x.device());
    SN_CUDNN_CHECK(cudnnConvolutionBackwardData(handle(), &kOne, d.w, w.data_ptr(), d.y, dy.data_ptr(), d.conv,
                                                cudnnConvolutionBwdDataAlgo_t(c.algo), ws.data_ptr(), c.bytes, &kZero,
                                                d.x, dx.data_ptr()));
  }
  if (dw.defined()) {
    // A packed dW: accumulate in place when the window is the whole (contiguous) filter,
    // otherwise compute it packed and add it into the window.
    const bool in_place = dw.is_contiguous();
    Tensor dwp = in_place ? dw.detach() : scratch_tensor(dw.sizes(), dw.device());
    Descriptors d(x, w.sizes(), dy, g);
    const Choice c = choose(key_of(2, x, w.sizes(), dy, g), "backward-filter", [&] {
      Tensor ws = workspace(kWorkspaceLimit, x.device());
      Tensor probe = scratch_tensor(w.sizes(), w.device());
      cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      int n = 0;
      SN_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
          handle(), d.x, x.data_ptr(), d.y, dy.data_ptr(), d.conv, d.w, probe.data_ptr(),
          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf, ws.data_ptr(), kWorkspaceLimit));
      return fastest(perf, n, "backward-filter");
    });
    Tensor ws = workspace(c.bytes, x.device());
    SN_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle(), &kOne, d.x, x.data_ptr(), d.y, dy.data_ptr(), d.conv,
                                                  cudnnConvolutionBwdFilterAlgo_t(c.algo), ws.data_ptr(), c.bytes,
                                                  in_place ? &kOne : &kZero, d.w, dwp.data_ptr()));
    if (!in_place) backend.axpy(dw.detach(), 1.f, dwp);
  }
}

}  // namespace cuda
}  // namespace sn
