// What the CUDA runtime sees on this machine. Declared without CUDA headers so any module can
// ask; defined in src/backend/cuda/ when the CUDA backend is compiled (TESSERA_HAVE_CUDA),
// and by a stub reporting "not compiled" otherwise.
#pragma once

#include <string>

namespace tessera::backend {

struct CudaDeviceSummary {
  bool compiled = false;    // the CUDA backend is part of this build
  int device_count = 0;     // visible devices (0 without a GPU or driver)
  std::string description;  // "NVIDIA H200 (sm_90, 139 GiB)" or why none is usable
};

CudaDeviceSummary query_cuda_devices();

}  // namespace tessera::backend
