// kernels/cuda/cublas_loader.h — cuBLAS, loaded on first use.
//
// libcublas pulls in libcublasLt, whose static initialisers take about 0.3 s at process start
// (measured on the build machine: an empty program linked with libcublas takes 0.38 s to run,
// with libcublasLt alone 0.33 s, against 0.01 s with cudart, cuDNN or NCCL). Linked directly, every process paid that — the CLI on the CPU, each
// test. The library is therefore opened with dlopen when the first GEMM needs a handle, and the
// few entry points the backend calls are taken from it.
#pragma once

#include <cublas_v2.h>

namespace sn::cuda {

struct CublasApi {
  cublasStatus_t (*create)(cublasHandle_t*);
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t);
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
  cublasStatus_t (*gemm_strided_batched_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                            const void*, const void*, cudaDataType, int, long long, const void*,
                                            cudaDataType, int, long long, const void*, void*, cudaDataType, int,
                                            long long, int, cublasComputeType_t, cublasGemmAlgo_t);
};

// Opens cuBLAS on the first call (the path found at configure time, then the library's soname on
// the loader's search path); an sn::Error saying what is missing if it cannot.
const CublasApi& cublas_api();

// Whether cublas_api() has loaded the library in this process.
bool cublas_loaded();

}  // namespace sn::cuda
