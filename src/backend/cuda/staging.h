// Staging of one CUDA op's operands: a Tensor whose data is device memory is used as is; a host
// Tensor is copied into a device buffer spanning its strided extent (aliasing views share one
// buffer), and outputs are copied back. Host spans (ids, positions) always travel this way.
// Invariant: finish() returns only after every host output is back (it synchronises the stream
// when an output lives on the host); ops whose host operands are all inputs stay asynchronous
// (inputs are copied through pinned memory, so the caller may reuse them at once).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <span>
#include <vector>

#include "tessera/core/status.h"
#include "tessera/core/tensor.h"

namespace tessera::backend::cuda {

// A Status from a CUDA error, naming the op ("cuda rms_norm: invalid argument").
Status cuda_status(cudaError_t err, const char* what);
#define TESSERA_CUDA_RETURN(expr, what)                                   \
  do {                                                                    \
    const cudaError_t tessera_cuda_err_ = (expr);                         \
    if (tessera_cuda_err_ != cudaSuccess) {                               \
      return ::tessera::backend::cuda::cuda_status(tessera_cuda_err_, what); \
    }                                                                     \
  } while (0)

bool is_device_pointer(const void* p);

class Staging {
 public:
  explicit Staging(cudaStream_t stream) : stream_(stream) {}
  ~Staging();
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;

  // Registers an operand; returns a handle for dev(). Empty tensors get -1.
  int add(const Tensor& t, bool output);
  int add_ints(std::span<const int32_t> values);
  // Allocates device buffers and uploads host operands.
  Status stage();
  Tensor dev(int handle) const;
  const int32_t* dev_ints(int handle) const;
  // Device scratch freed (stream-ordered) with the Staging.
  Result<void*> scratch(int64_t bytes);
  // Copies host outputs back and synchronises if anything came from the host.
  Status finish();

 private:
  struct Entry {
    Tensor t;
    const char* lo = nullptr;
    int64_t bytes = 0;
    bool output = false;
    bool on_device = false;
    int span = -1;
  };
  struct Span {
    const char* lo;
    const char* hi;
    bool output;
    char* dev = nullptr;
  };
  cudaStream_t stream_;
  std::vector<Entry> entries_;
  std::vector<Span> spans_;
  std::vector<void*> owned_;
  bool any_host_output_ = false;
};

}  // namespace tessera::backend::cuda
