// query_cuda_devices() and make_cuda_backend() for builds without the CUDA backend
// (TESSERA_CUDA=OFF or no nvcc).
#include "tessera/backend/cuda_backend.h"
#include "tessera/backend/cuda_device.h"

#ifndef TESSERA_HAVE_CUDA
namespace tessera::backend {
CudaDeviceSummary query_cuda_devices() {
  return {false, 0, "CUDA backend not compiled (configure with -DTESSERA_CUDA=ON)"};
}
Result<std::unique_ptr<CudaBackend>> make_cuda_backend(int device) {
  return make_error(StatusCode::kUnavailable,
                    "CUDA backend not compiled (configure with -DTESSERA_CUDA=ON)");
}
}  // namespace tessera::backend
#endif
