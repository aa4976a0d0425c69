// The CUDA backend, declared without CUDA headers so any module can create one. Tensors stay
// plain Tensor views (core is unchanged): a view whose data pointer is device memory runs in
// place, stream-ordered; a host view is staged (copied in, run, copied back, synchronised),
// which is the path tests/ops uses. Device tensors come from Backend::allocate() / upload(). Step
// graphs (supports_graphs) are CUDA stream capture and graph launch on the backend's stream.
// Invariant: a device Tensor's data is never dereferenced on the host; see docs/cuda.md.
#pragma once

#include <memory>

#include "tessera/backend/backend.h"
#include "tessera/core/status.h"

namespace tessera::backend {

class CudaBackend : public Backend {};

// A CUDA backend on `device`, or kUnavailable saying why not (not compiled, no GPU, no
// driver). Never aborts on a machine without a GPU.
Result<std::unique_ptr<CudaBackend>> make_cuda_backend(int device = 0);

}  // namespace tessera::backend
