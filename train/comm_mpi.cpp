// train/comm_mpi.cpp — the MPI communicator (MPI_COMM_WORLD), for CPU tensors.
//
// Collectives are issued non-blocking and polled against a deadline: if a peer died or stalls,
// this rank prints one line and calls MPI_Abort, which ends the whole job (no hang).
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "train/comm.h"

namespace sn {
namespace {

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_s) : timeout_s_(timeout_s) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      SN_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS, "comm",
               "MPI_Init_thread failed");
      std::atexit(finalize_mpi);
    }
    SN_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN) == MPI_SUCCESS &&
                 MPI_Comm_rank(MPI_COMM_WORLD, &rank_) == MPI_SUCCESS &&
                 MPI_Comm_size(MPI_COMM_WORLD, &size_) == MPI_SUCCESS,
             "comm", "MPI cannot tell this process's rank");
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void all_reduce_sum(float* data, int64_t n) override {
    stats_.collectives++;
    stats_.bytes_reduced += n * int64_t(sizeof(float));
    in_pieces(n, [&](int64_t done, int count, MPI_Request* request) {
      return MPI_Iallreduce(MPI_IN_PLACE, data + done, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, request);
    }, "all-reduce");
  }
  void all_reduce_max(int64_t* data, int64_t n) override {
    stats_.collectives++;
    in_pieces(n, [&](int64_t done, int count, MPI_Request* request) {
      return MPI_Iallreduce(MPI_IN_PLACE, data + done, count, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD, request);
    }, "all-reduce");
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    stats_.collectives++;
    in_pieces(bytes, [&](int64_t done, int count, MPI_Request* request) {  // optimizer states may pass 2 GiB
      return MPI_Ibcast(static_cast<char*>(data) + done, count, MPI_BYTE, root, MPI_COMM_WORLD, request);
    }, "broadcast");
  }
  void barrier() override {
    MPI_Request request;
    check(MPI_Ibarrier(MPI_COMM_WORLD, &request), "barrier");
    wait(request, "barrier");
  }

 private:
  [[noreturn]] void abort_job(const std::string& message) {
    std::fprintf(stderr, "error: comm: rank %d of %d: %s; ending the job\n", rank_, size_, message.c_str());
    end_job_after_error(1);
    std::_Exit(1);
  }
  void check(int code, const char* what) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(code, text, &length);
    abort_job(std::string(what) + " failed: " + std::string(text, size_t(length)));
  }
  void wait(MPI_Request& request, const char* what) {
    const auto start = std::chrono::steady_clock::now();
    for (int polls = 0;; ++polls) {
      int done = 0;
      check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), what);
      if (done) return;
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (waited > timeout_s_)
        abort_job(std::string(what) + " waited " + std::to_string(int(waited)) +
                  " s for the other ranks (one died or stalls; the limit is train.comm_timeout_s)");
      if (polls > 1000) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

  // MPI counts are int: n elements go as collectives of at most 2^30 each, issued by
  // start(done, count, &request) and each waited for against the deadline.
  template <class Start>
  void in_pieces(int64_t n, Start&& start, const char* what) {
    for (int64_t done = 0; done < n;) {
      const int count = int(std::min<int64_t>(n - done, int64_t(1) << 30));
      MPI_Request request;
      check(start(done, count, &request), what);
      wait(request, what);
      done += count;
    }
  }

  double timeout_s_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

void end_job_after_error(int exit_code) {
  int initialized = 0, finalized = 0, size = 1;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized || MPI_Comm_size(MPI_COMM_WORLD, &size) != MPI_SUCCESS || size < 2) return;
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
}

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s) {
  return std::make_unique<MpiCommunicator>(timeout_s);
}

}  // namespace sn
