// train/comm_nccl.cpp — the NCCL communicator: GPU tensors are reduced and broadcast by NCCL on
// the device, on the stream the kernels run on; host data (sub-model windows, scalars, the
// resume state) goes through the host communicator: MPI under mpirun (which also carries NCCL's
// unique id), else the local one (a single rank, e.g. to test the NCCL path on one GPU).
//
// Before anything touches CUDA, the rank selects its GPU: the launcher's local rank
// (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID, SLURM_LOCALID or LOCAL_RANK), else its place
// among the ranks that share its host name. The communicator is non-blocking and every
// collective is polled against the deadline: a dead or stalled peer makes this rank abort the
// NCCL communicator, print one line and exit non-zero, which ends the job under mpirun (no hang).
#include <cuda_runtime.h>
#include <nccl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cuda/cuda_backend.h"
#include "train/comm.h"

namespace sn {
namespace {

// The launcher's local rank, or -1.
int launcher_local_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  return -1;
}

// This rank's place among the ranks on its host: host-name hashes gathered through the host
// communicator (each rank fills its own slot, the maximum over ranks fills them all).
int local_rank_by_hostname(Communicator& host) {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  const int64_t mine = int64_t(std::hash<std::string>{}(name) >> 1);  // non-negative
  std::vector<int64_t> all(static_cast<size_t>(host.size()), -1);
  all[size_t(host.rank())] = mine;
  host.all_reduce_max(all.data(), int64_t(all.size()));
  int local = 0;
  for (int r = 0; r < host.rank(); ++r) local += all[size_t(r)] == mine;
  return local;
}

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(double timeout_s) : timeout_s_(timeout_s) {
    // The GPU before MPI starts where the launcher names the local rank: a CUDA-aware MPI may
    // create a context on the current device while it initialises.
    const int launcher_local = launcher_local_rank();
    if (launcher_local >= 0) select_gpu(launcher_local);
    host_ = launched_by_mpi() ? make_mpi_communicator(timeout_s) : make_local_communicator();
    if (launcher_local < 0) select_gpu(local_rank_by_hostname(*host_));
    const int rank = host_->rank(), size = host_->size();
    ncclUniqueId id{};
    if (rank == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    host_->broadcast(&id, sizeof id, 0);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // so that a missing peer cannot block the initialisation forever
    ncclResult_t r = ncclCommInitRankConfig(&comm_, size, id, rank, &config);
    if (r != ncclInProgress) check(r, "ncclCommInitRankConfig");
    wait_ready("initialisation");
  }
  ~NcclCommunicator() override {
    // Left over only when an error ends the run before finish(). Destroying finalises, which
    // waits for every rank; a single rank has no one to wait for, and with more the process is
    // about to end (the error handler ends the job), which releases the GPU anyway.
    if (comm_ && host_->size() == 1) ncclCommDestroy(comm_);
  }

  // Every rank, together: ncclCommFinalize (non-blocking here, so polled against the deadline)
  // completes the outstanding work, then ncclCommDestroy frees this rank's resources.
  void finish() override {
    if (!comm_) return;
    check(ncclCommFinalize(comm_), "ncclCommFinalize");
    wait_ready("finalisation");
    check(ncclCommDestroy(comm_), "ncclCommDestroy");
    comm_ = nullptr;
  }

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  std::string backend() const override { return "nccl, GPU " + std::to_string(gpu_); }

  // Host memory: the host communicator.
  void all_reduce_sum(float* data, int64_t n) override {
    stats_.collectives++;
    stats_.bytes_reduced += n * int64_t(sizeof(float));
    host_->all_reduce_sum(data, n);
  }
  void all_reduce_max(int64_t* data, int64_t n) override {
    stats_.collectives++;
    host_->all_reduce_max(data, n);
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    stats_.collectives++;
    host_->broadcast(data, bytes, root);
  }
  void barrier() override { host_->barrier(); }

  // Device memory: NCCL on the kernels' stream, then polled to completion.
  void all_reduce_sum_tensor(const Tensor& t) override {
    if (!t.device().is_cuda()) return Communicator::all_reduce_sum_tensor(t);
    SN_CHECK(t.dtype() == DType::f32 && t.is_contiguous(), "all_reduce", "expects a contiguous f32 tensor, got ",
             t.str());
    stats_.collectives++;
    stats_.bytes_reduced += t.numel() * int64_t(sizeof(float));
    enqueue(ncclAllReduce(t.data_ptr(), t.data_ptr(), size_t(t.numel()), ncclFloat, ncclSum, comm_, current_stream()),
            "all-reduce");
  }
  void broadcast_tensor(const Tensor& t, int root) override {
    if (!t.device().is_cuda()) return Communicator::broadcast_tensor(t, root);
    SN_CHECK(t.is_contiguous(), "broadcast", "expects a contiguous tensor, got ", t.str());
    stats_.collectives++;
    const size_t bytes = size_t(t.numel()) * element_size(t.dtype());
    enqueue(ncclBroadcast(t.data_ptr(), t.data_ptr(), bytes, ncclUint8, root, comm_, current_stream()), "broadcast");
  }

 private:
  void select_gpu(int local) {
    const int gpus = cuda_device_count();
    if (gpus == 0) abort_job("no CUDA device visible to this rank");
    if (local >= gpus)  // NCCL refuses two ranks of one communicator on one GPU
      abort_job("local rank " + std::to_string(local) + " on this machine but " + std::to_string(gpus) +
                " GPU(s) visible; start at most one rank per GPU");
    gpu_ = local;
    check_cuda(cudaSetDevice(gpu_), "cudaSetDevice");
  }
  [[noreturn]] void abort_job(const std::string& message) {
    if (host_)
      std::fprintf(stderr, "error: comm: rank %d of %d: %s; ending the job\n", host_->rank(), host_->size(),
                   message.c_str());
    else
      std::fprintf(stderr, "error: comm: %s; ending the job\n", message.c_str());
    std::fflush(stderr);
    // Several ranks: MPI_Abort ends them all now. ncclCommAbort is not called there: it expects
    // every rank to call it, and a dead or stalled peer never will.
    end_job_after_error(1);
    if (comm_) ncclCommAbort(comm_);
    std::_Exit(1);  // outside mpirun's MPI (e.g. srun without MPI initialised), the launcher ends the rest
  }
  void check(ncclResult_t r, const char* what) {
    if (r != ncclSuccess && r != ncclInProgress)
      abort_job(std::string(what) + " failed: " + ncclGetErrorString(r) + (comm_ ? std::string(" (") +
                ncclGetLastError(comm_) + ")" : std::string()));
  }
  void check_cuda(cudaError_t e, const char* what) {
    if (e != cudaSuccess) abort_job(std::string(what) + " failed: " + cudaGetErrorString(e));
  }
  // Polls until the communicator has left ncclInProgress (initialisation), within the deadline.
  void wait_ready(const char* what) {
    poll(what, [&] {
      ncclResult_t state = ncclInProgress;
      check(ncclCommGetAsyncError(comm_, &state), what);
      check(state, what);
      return state == ncclSuccess;
    });
  }
  // Issues a collective and polls its stream and the communicator until it completed.
  void enqueue(ncclResult_t issued, const char* what) {
    check(issued, what);
    wait_ready(what);  // a non-blocking communicator may still be enqueuing
    poll(what, [&] {
      ncclResult_t state = ncclSuccess;
      check(ncclCommGetAsyncError(comm_, &state), what);
      check(state, what);
      const cudaError_t q = cudaStreamQuery(current_stream());
      if (q == cudaErrorNotReady) {
        (void)cudaGetLastError();  // "not ready" is recorded as the last error: the next launch check must not see it
        return false;
      }
      check_cuda(q, what);
      return true;
    });
  }
  void poll(const char* what, const std::function<bool()>& done) {
    const auto start = std::chrono::steady_clock::now();
    for (int polls = 0; !done(); ++polls) {
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (waited > timeout_s_)
        abort_job(std::string(what) + " waited " + std::to_string(int(waited)) +
                  " s for the other ranks (one died or stalls; the limit is train.comm_timeout_s)");
      if (polls > 1000) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

  std::unique_ptr<Communicator> host_;
  double timeout_s_;
  ncclComm_t comm_ = nullptr;
  int gpu_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(double timeout_s) {
  return std::make_unique<NcclCommunicator>(timeout_s);
}

}  // namespace sn
