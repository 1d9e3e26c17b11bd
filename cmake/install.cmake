# Installation: headers under include/sortednet/, the static libraries, the CLI, and a CMake
# package (find_package(sortednet) → sortednet::sortednet), versioned with the project.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SN_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/sortednet)
set(SN_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/sortednet)

# The public headers; backend internals (kernels/cpu, kernels/cuda, autograd/ops) stay private.
install(FILES sortednet.h DESTINATION ${SN_INSTALL_INCLUDEDIR})
foreach(dir core autograd nn models train)
  file(GLOB headers ${dir}/*.h)
  list(FILTER headers EXCLUDE REGEX "(tensor_impl|registry)\\.h$")
  install(FILES ${headers} DESTINATION ${SN_INSTALL_INCLUDEDIR}/${dir})
endforeach()
install(FILES kernels/backend.h DESTINATION ${SN_INSTALL_INCLUDEDIR}/kernels)

# Installed code includes "core/tensor.h" (the layout of the source tree) or <sortednet/...>.
target_include_directories(sn_core PUBLIC $<INSTALL_INTERFACE:${SN_INSTALL_INCLUDEDIR}>
                                          $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)

set(SN_LIBRARIES sn_core sn_kernels sn_autograd sn_nn sn_models sn_train)
install(TARGETS ${SN_LIBRARIES} sortednet ${SN_BLAS_TARGET} EXPORT sortednetTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
# The CLI finds the OpenMP build of OpenBLAS where the build found it.
if(SN_WITH_BLAS)
  set_target_properties(sortednet_cli PROPERTIES INSTALL_RPATH "${SN_OPENBLAS_DIR}")
endif()
install(TARGETS sortednet_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(EXPORT sortednetTargets NAMESPACE sortednet:: DESTINATION ${SN_INSTALL_CMAKEDIR})
configure_package_config_file(cmake/sortednetConfig.cmake.in ${CMAKE_BINARY_DIR}/sortednetConfig.cmake
                              INSTALL_DESTINATION ${SN_INSTALL_CMAKEDIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/sortednetConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/sortednetConfig.cmake ${CMAKE_BINARY_DIR}/sortednetConfigVersion.cmake
        DESTINATION ${SN_INSTALL_CMAKEDIR})
