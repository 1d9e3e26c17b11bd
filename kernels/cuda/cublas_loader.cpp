// kernels/cuda/cublas_loader.cpp — cuBLAS opened on first use (see cublas_loader.h).
#include "kernels/cuda/cublas_loader.h"

#include <dlfcn.h>

#include <atomic>
#include <string>
#include <vector>

#include "core/error.h"

namespace sn::cuda {
namespace {

std::atomic<bool> g_loaded{false};

CublasApi load() {
  // SN_CUBLAS_LIBRARY: the library CMake found (kernels/CMakeLists.txt); SN_CUBLAS_SONAME: its
  // soname, for a machine where it lives elsewhere on the loader's path.
  std::vector<std::string> candidates{SN_CUBLAS_LIBRARY, SN_CUBLAS_SONAME, "libcublas.so"};
  void* lib = nullptr;
  std::string errors;
  for (const std::string& name : candidates) {
    if (name.empty()) continue;
    lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib) break;
    const char* why = dlerror();
    errors += (errors.empty() ? "" : "; ") + std::string(why ? why : name);
  }
  SN_CHECK(lib != nullptr, "cuda", "cannot load cuBLAS (", errors,
           "): install it or put its folder on LD_LIBRARY_PATH");
  auto symbol = [&](const char* name) {
    void* p = dlsym(lib, name);
    SN_CHECK(p != nullptr, "cuda", "cuBLAS has no ", name, " (a version older than this build's headers?)");
    return p;
  };
  // An unversioned name on the search path may find another major version than the headers'.
  using GetProperty = cublasStatus_t (*)(libraryPropertyType, int*);
  int major = -1;
  SN_CHECK(reinterpret_cast<GetProperty>(symbol("cublasGetProperty"))(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS,
           "cuda", "cuBLAS does not report its version");
  SN_CHECK(major == CUBLAS_VER_MAJOR, "cuda", "the cuBLAS found is version ", major, ", this build needs ",
           CUBLAS_VER_MAJOR, ": put the matching one on LD_LIBRARY_PATH");
  CublasApi api;
  api.create = reinterpret_cast<decltype(api.create)>(symbol("cublasCreate_v2"));
  api.set_stream = reinterpret_cast<decltype(api.set_stream)>(symbol("cublasSetStream_v2"));
  api.gemm_ex = reinterpret_cast<decltype(api.gemm_ex)>(symbol("cublasGemmEx"));
  api.gemm_strided_batched_ex =
      reinterpret_cast<decltype(api.gemm_strided_batched_ex)>(symbol("cublasGemmStridedBatchedEx"));
  g_loaded.store(true);
  return api;  // the library stays open for the process
}

}  // namespace

const CublasApi& cublas_api() {
  static const CublasApi api = load();  // a failed load throws, and the next call tries again
  return api;
}

bool cublas_loaded() { return g_loaded.load(); }

}  // namespace sn::cuda
