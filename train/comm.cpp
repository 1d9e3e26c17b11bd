// train/comm.cpp — the local communicator and the window packing shared by all backends.
#include "train/comm.h"

#include <cstdlib>
#include <cstring>
#include <utility>

#include "autograd/ops.h"
#include "core/grad_mode.h"

namespace sn {
namespace {

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  void all_reduce_sum(float*, int64_t n) override {
    stats_.collectives++;
    stats_.bytes_reduced += n * int64_t(sizeof(float));
  }
  void all_reduce_max(int64_t*, int64_t) override { stats_.collectives++; }
  void broadcast(void*, int64_t, int) override { stats_.collectives++; }
  void barrier() override {}
};

// Calls f(offset, row pointer, row length) for each innermost row of t's window, in order.
template <class F>
void for_each_window_row(const Tensor& t, const Shape& window, F&& f) {
  const int64_t dims = int64_t(window.size());
  if (numel_of(window) == 0) return;
  if (dims == 0) return f(static_cast<float*>(t.data_ptr()), int64_t(1));
  SN_CHECK(t.stride(dims - 1) == 1 || window[size_t(dims - 1)] == 1, "all_reduce_windows",
           "needs a unit inner stride, got ", shape_str(t.strides()));
  const int64_t row = window[size_t(dims - 1)], rows = numel_of(window) / row;
  float* base = static_cast<float*>(t.data_ptr());
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rest = r, offset = 0;
    for (int64_t d = dims - 2; d >= 0; --d) {
      offset += (rest % window[size_t(d)]) * t.stride(d);
      rest /= window[size_t(d)];
    }
    f(base + offset, row);
  }
}

// The GPU version: the windows are packed into one device buffer by strided copies, reduced
// there, and copied back scaled.
void all_reduce_device_windows(Communicator& comm, const std::vector<Tensor>& grads, const std::vector<Shape>& windows,
                               Device device, int64_t total, float scale) {
  NoGradGuard no_grad;
  Tensor packed = empty({total}, DType::f32, device);
  auto each = [&](auto&& f) {
    int64_t at = 0;
    for (size_t i = 0; i < grads.size(); ++i) {
      const int64_t n = grads[i].defined() ? numel_of(windows[i]) : 0;
      if (n == 0) continue;
      f(grads[i].prefix(windows[i]), packed.narrow(0, at, n).view(windows[i]));
      at += n;
    }
  };
  each([](Tensor window, Tensor slot) { slot.copy_(window); });
  comm.all_reduce_sum_tensor(packed);
  if (scale != 1.f) packed = packed * scale;
  each([](Tensor window, Tensor slot) { window.copy_(slot); });
}

}  // namespace

void Communicator::all_reduce_sum_tensor(const Tensor& t) {
  SN_CHECK(t.dtype() == DType::f32 && t.is_contiguous(), "all_reduce", "expects a contiguous f32 tensor, got ", t.str());
  if (t.device().is_cpu()) return all_reduce_sum(static_cast<float*>(t.data_ptr()), t.numel());
  NoGradGuard no_grad;
  Tensor host = t.to(Device::cpu()), target = t;
  all_reduce_sum(static_cast<float*>(host.data_ptr()), host.numel());
  target.copy_(host);
}

void Communicator::broadcast_tensor(const Tensor& t, int root) {
  SN_CHECK(t.is_contiguous(), "broadcast", "expects a contiguous tensor, got ", t.str());
  const int64_t bytes = t.numel() * int64_t(element_size(t.dtype()));
  if (t.device().is_cpu()) return broadcast(t.data_ptr(), bytes, root);
  NoGradGuard no_grad;
  Tensor host = t.to(Device::cpu()), target = t;
  broadcast(host.data_ptr(), bytes, root);
  target.copy_(host);
}

std::unique_ptr<Communicator> make_local_communicator() { return std::make_unique<LocalCommunicator>(); }

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(var)) return true;
  return false;
}

void union_windows(Communicator& comm, std::vector<Shape>& windows) {
  if (comm.size() == 1) return;
  std::vector<int64_t> flat;
  for (const Shape& w : windows) flat.insert(flat.end(), w.begin(), w.end());
  comm.all_reduce_max(flat.data(), int64_t(flat.size()));
  size_t at = 0;
  for (Shape& w : windows)
    for (int64_t& d : w) d = flat[at++];
}

void all_reduce_windows(Communicator& comm, const std::vector<Tensor>& grads, const std::vector<Shape>& windows,
                        float scale) {
  SN_CHECK(grads.size() == windows.size(), "all_reduce_windows", grads.size(), " tensors but ", windows.size(),
           " windows");
  int64_t total = 0;
  Device device = Device::cpu();
  bool first = true;
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined()) continue;
    if (std::exchange(first, false)) device = grads[i].device();
    SN_CHECK(grads[i].dtype() == DType::f32 && grads[i].device() == device, "all_reduce_windows",
             "expects f32 tensors on one device, got ", grads[i].str(), " beside ", device.str());
    SN_CHECK(windows[i].size() == size_t(grads[i].dim()), "all_reduce_windows", "window ", shape_str(windows[i]),
             " does not fit ", grads[i].str());
    for (size_t d = 0; d < windows[i].size(); ++d)
      SN_CHECK(windows[i][d] <= grads[i].size(int64_t(d)), "all_reduce_windows", "window ", shape_str(windows[i]),
               " exceeds ", grads[i].str());
    total += numel_of(windows[i]);
  }
  if (total == 0) return;
  if (device.is_cuda()) return all_reduce_device_windows(comm, grads, windows, device, total, scale);
  std::vector<float> packed(static_cast<size_t>(total));
  float* out = packed.data();
  for (size_t i = 0; i < grads.size(); ++i)
    if (grads[i].defined())
      for_each_window_row(grads[i], windows[i], [&](float* row, int64_t n) { out = std::copy(row, row + n, out); });
  comm.all_reduce_sum(packed.data(), total);
  const float* in = packed.data();
  for (size_t i = 0; i < grads.size(); ++i)
    if (grads[i].defined())
      for_each_window_row(grads[i], windows[i], [&](float* row, int64_t n) {
        for (int64_t k = 0; k < n; ++k) row[k] = in[k] * scale;
        in += n;
      });
}

#ifndef SN_WITH_MPI
std::unique_ptr<Communicator> make_mpi_communicator(double) {
  fail("comm", "this sortednet was built without MPI (install libopenmpi-dev and rebuild)");
}
void end_job_after_error(int) {}
#endif
#ifndef SN_WITH_NCCL_COMM
std::unique_ptr<Communicator> make_nccl_communicator(double) {
  fail("comm", "this sortednet was built without NCCL (it needs CUDA and NCCL at configure time)");
}
#endif

}  // namespace sn
