# Finds the system packages sortednet builds on (Debian 12). No third-party code lives here.

find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)

# Resolves an AUTO/ON/OFF option: VAR_OUT is ON when wanted and FOUND; ON without FOUND is fatal.
function(sn_resolve_option name found why out)
  set(value ${${name}})
  if(value STREQUAL "OFF")
    set(${out} OFF PARENT_SCOPE)
  elseif(found)
    set(${out} ON PARENT_SCOPE)
  elseif(value STREQUAL "ON")
    message(FATAL_ERROR "${name}=ON but ${why}")
  else()
    message(STATUS "${name}: AUTO -> OFF (${why})")
    set(${out} OFF PARENT_SCOPE)
  endif()
endfunction()

# BLAS: OpenBLAS through its CBLAS interface (takes leading dimensions, so windows need no copy).
# The OpenMP build of OpenBLAS is required: our kernels use OpenMP, and the pthread build's
# threads would fight libgomp's spinning workers for the same cores (measured: 4x slower steps).
# Its directory goes into the binaries' RUNPATH, ahead of Debian's libopenblas alternative.
# SN_BLAS=OFF (or AUTO without it) builds the portable GEMM of kernels/cpu/sgemm.cpp instead;
# SN_BLAS_TARGET is then empty and SN_WITH_BLAS undefined.
set(sn_blas_found OFF)
if(NOT SN_BLAS STREQUAL "OFF")
  set(SN_OPENBLAS_DIR /usr/lib/x86_64-linux-gnu/openblas-openmp CACHE PATH "OpenBLAS (OpenMP build) library directory")
  find_library(SN_OPENBLAS_LIB NAMES openblas PATHS ${SN_OPENBLAS_DIR} NO_DEFAULT_PATH)
  find_path(SN_OPENBLAS_INCLUDE cblas.h PATHS /usr/include/x86_64-linux-gnu/openblas-openmp NO_DEFAULT_PATH)
  if(SN_OPENBLAS_LIB AND SN_OPENBLAS_INCLUDE)
    set(sn_blas_found ON)
  endif()
endif()
sn_resolve_option(SN_BLAS ${sn_blas_found}
                  "OpenBLAS (OpenMP build) not found: install libopenblas-openmp-dev (tools/install-deps.sh)"
                  SN_WITH_BLAS)
set(SN_BLAS_TARGET "")
if(SN_WITH_BLAS)
  add_library(sn_openblas INTERFACE)
  target_link_libraries(sn_openblas INTERFACE ${SN_OPENBLAS_LIB})
  target_include_directories(sn_openblas INTERFACE ${SN_OPENBLAS_INCLUDE})
  target_compile_definitions(sn_openblas INTERFACE SN_WITH_BLAS=1)
  set(SN_BLAS_TARGET sn_openblas)
endif()

# CUDA: nvcc from PATH, CUDACXX or the usual /usr/local/cuda.
set(sn_cuda_found OFF)
if(NOT SN_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)  # Hopper (H100/H200); override on the command line
    endif()
    enable_language(CUDA)
    # CMake 3.25 predates nvcc's C++20 support; tell it the flag (newer CMake knows it).
    if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    endif()
    find_package(CUDAToolkit)
    if(CUDAToolkit_FOUND)
      set(sn_cuda_found ON)
    endif()
  endif()
endif()
sn_resolve_option(SN_CUDA ${sn_cuda_found} "no CUDA compiler/toolkit found" SN_WITH_CUDA)

set(sn_cudnn_found OFF)
set(sn_nccl_found OFF)
if(SN_WITH_CUDA)
  find_path(SN_CUDNN_INCLUDE cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include /usr/include/x86_64-linux-gnu)
  find_library(SN_CUDNN_LIB cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
  if(SN_CUDNN_INCLUDE AND SN_CUDNN_LIB)
    set(sn_cudnn_found ON)
  endif()
  find_path(SN_NCCL_INCLUDE nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include)
  find_library(SN_NCCL_LIB nccl HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib
               /usr/local/cuda/lib /usr/lib/x86_64-linux-gnu)
  if(SN_NCCL_INCLUDE AND SN_NCCL_LIB)
    set(sn_nccl_found ON)
  endif()
endif()
sn_resolve_option(SN_CUDNN ${sn_cudnn_found} "cuDNN not found (or CUDA off)" SN_WITH_CUDNN)
sn_resolve_option(SN_NCCL ${sn_nccl_found} "NCCL not found (or CUDA off)" SN_WITH_NCCL)

set(sn_mpi_found OFF)
if(NOT SN_MPI STREQUAL "OFF")
  find_package(MPI QUIET COMPONENTS CXX)
  if(MPI_CXX_FOUND)
    set(sn_mpi_found ON)
  endif()
endif()
sn_resolve_option(SN_MPI ${sn_mpi_found} "MPI not found: install libopenmpi-dev" SN_WITH_MPI)
