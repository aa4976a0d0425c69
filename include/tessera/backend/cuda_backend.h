// The CUDA backend, declared without CUDA headers so any module can create one. Tensors stay
// plain Tensor views (core is unchanged): a view whose data pointer is device memory runs in
// place, stream-ordered; a host view is staged (copied in, run, copied back, synchronised),
// which is the path tests/ops uses. Device tensors come from allocate() / upload() below.
// Invariant: a device Tensor's data is never dereferenced on the host; see docs/cuda.md.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>

#include "tessera/backend/backend.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"

namespace tessera::backend {

class CudaBackend : public Backend {
 public:
  // Device memory owned by the backend until it is destroyed (weights, KV cache, workspace).
  // The view is contiguous; its contents are undefined until written.
  virtual Result<Tensor> allocate(DType dtype, std::initializer_list<int64_t> shape) = 0;
  // A contiguous device copy of a host tensor (weights are uploaded once at load time).
  virtual Result<Tensor> upload(const Tensor& host) = 0;
  // Copies a device tensor into a host tensor of the same shape and dtype; synchronises.
  virtual Status download(const Tensor& device, Tensor host) = 0;
  // Waits for every op enqueued so far; reports an asynchronous kernel fault, if any.
  virtual Status synchronize() = 0;
};

// A CUDA backend on `device`, or kUnavailable saying why not (not compiled, no GPU, no
// driver). Never aborts on a machine without a GPU.
Result<std::unique_ptr<CudaBackend>> make_cuda_backend(int device = 0);

}  // namespace tessera::backend
