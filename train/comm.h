// train/comm.h — collectives for data-parallel training, behind one interface: a local
// communicator (one process, needs nothing), MPI (built where MPI is found; GPU tensors staged
// through host memory) and NCCL for GPU tensors (built where NCCL and CUDA are found; under
// mpirun MPI carries NCCL's unique id and the host data, NCCL reduces on the devices).
//
// Gradients travel as windows: all_reduce_windows packs the touched prefix of every gradient
// into one contiguous buffer, reduces it in a single collective and unpacks it, so a step that
// trained only small sub-models moves only their bytes. Every collective has a deadline: a rank
// that died or stalls makes the others fail with a clear message instead of hanging.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace sn {

struct CommStats {
  int64_t collectives = 0;
  int64_t bytes_reduced = 0;  // payload of all-reduces (per rank, before the backend's own traffic)
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;
  // In place, across all ranks: the element-wise sum of n floats / the maximum of n integers.
  virtual void all_reduce_sum(float* data, int64_t n) = 0;
  virtual void all_reduce_max(int64_t* data, int64_t n) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Every rank, together, once its last collective is done: releases what the backend holds
  // across ranks (NCCL's communicator), within the deadline. Nothing to do for MPI and one process.
  virtual void finish() {}
  // The same for a contiguous tensor on any device (f32 for the sum). These versions hand a CPU
  // tensor's memory to the collectives above and stage a GPU tensor through host memory; the
  // NCCL communicator reduces and broadcasts GPU tensors on the device.
  virtual void all_reduce_sum_tensor(const Tensor& t);
  virtual void broadcast_tensor(const Tensor& t, int root);

  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = {}; }

 protected:
  CommStats stats_;
};

// One process: every collective is the identity.
std::unique_ptr<Communicator> make_local_communicator();
// MPI_COMM_WORLD (initialising MPI on first use; finalised at exit). An sn::Error where sortednet
// was built without MPI. `timeout_s`: the longest a collective may wait for the other ranks.
std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s = 300.0);
// NCCL for GPU tensors, MPI for host data (the local communicator outside mpirun: one rank);
// selects this rank's GPU first (the launcher's local rank, e.g. OMPI_COMM_WORLD_LOCAL_RANK, else
// the rank's place among the ranks on its host), so that `cuda` in this process means that GPU.
// An sn::Error where sortednet was built without NCCL.
std::unique_ptr<Communicator> make_nccl_communicator(double timeout_s = 300.0);
// Whether this process was started by mpirun/srun (a rank of a multi-process job).
bool launched_by_mpi();
// For an error only this rank hit, after it has printed why: ends every rank of the job now
// (MPI_Abort with exit_code), where the others would wait in their next collective until
// train.comm_timeout_s. Returns where this process is not one of several MPI ranks.
void end_job_after_error(int exit_code);

// Makes every rank's `windows` (one prefix shape per tensor) their union: the element-wise
// maximum over ranks. Ranks that trained different sub-models then reduce the same region.
void union_windows(Communicator& comm, std::vector<Shape>& windows);

// grads[i].prefix(windows[i]) = scale · Σ_ranks grads[i].prefix(windows[i]), for every i, with the
// windows packed into one buffer and reduced in one collective. The tensors are all on the CPU
// or all on one GPU (packed there, reduced by all_reduce_sum_tensor).
void all_reduce_windows(Communicator& comm, const std::vector<Tensor>& grads, const std::vector<Shape>& windows,
                        float scale);

}  // namespace sn
