// query_cuda_devices() for builds without the CUDA backend (TESSERA_CUDA=OFF or no nvcc).
#include "tessera/backend/cuda_device.h"

#ifndef TESSERA_HAVE_CUDA
namespace tessera::backend {
CudaDeviceSummary query_cuda_devices() {
  return {false, 0, "CUDA backend not compiled (configure with -DTESSERA_CUDA=ON)"};
}
}  // namespace tessera::backend
#endif
