// kernels/cuda/cuda_check.h — every CUDA runtime return code becomes an sn::Error.
#pragma once

#include <cuda_runtime.h>

#include "core/error.h"

#define SN_CUDA_CHECK(expr)                                                              \
  do {                                                                                   \
    cudaError_t sn_err_ = (expr);                                                        \
    if (sn_err_ != cudaSuccess)                                                          \
      ::sn::fail("cuda", std::string(#expr) + " failed: " + cudaGetErrorString(sn_err_)); \
  } while (0)

// After a kernel launch: reports launch errors (bad configuration, no device).
#define SN_CUDA_CHECK_LAUNCH() SN_CUDA_CHECK(cudaGetLastError())
