// CUDA runtime query behind query_cuda_devices(); compiled only with the CUDA backend.
#include <cuda_runtime.h>

#include <fmt/format.h>

#include "tessera/backend/cuda_device.h"

namespace tessera::backend {

CudaDeviceSummary query_cuda_devices() {
  CudaDeviceSummary summary;
  summary.compiled = true;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    summary.description = fmt::format("no usable CUDA device: {}", cudaGetErrorString(err));
    return summary;
  }
  summary.device_count = count;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    summary.description += fmt::format("{}{} (sm_{}{}, {:.0f} GiB)", i ? "; " : "", prop.name,
                                       prop.major, prop.minor,
                                       static_cast<double>(prop.totalGlobalMem) / (1ull << 30));
  }
  return summary;
}

}  // namespace tessera::backend
