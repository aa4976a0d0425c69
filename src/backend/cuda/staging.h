// Staging of one CUDA op's operands: a Tensor whose data is device memory is used as is; a host
// Tensor is copied into a device buffer spanning its strided extent (aliasing views share one
// buffer), and outputs are copied back. Host spans (ids, positions) travel this way too.
// Invariant: finish() returns only after every host output is back (it synchronises the stream
// when an output lives on the host); ops whose host operands are all inputs stay asynchronous
// (inputs are copied through pinned memory, so the caller may reuse them at once). While a step
// graph is captured a host operand is an error and scratch comes from the CaptureArena.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <span>
#include <vector>

#include "src/backend/cuda/capture_scratch_plan.h"
#include "tessera/core/status.h"
#include "tessera/core/tensor.h"

namespace tessera::backend::cuda {

// A Status from a CUDA error, naming the op ("cuda rms_norm: invalid argument").
Status cuda_status(cudaError_t err, const char* what);
#define TESSERA_CUDA_RETURN(expr, what)                                      \
  do {                                                                       \
    const cudaError_t tessera_cuda_err_ = (expr);                            \
    if (tessera_cuda_err_ != cudaSuccess) {                                  \
      return ::tessera::backend::cuda::cuda_status(tessera_cuda_err_, what); \
    }                                                                        \
  } while (0)

bool is_device_pointer(const void* p);

// Per-backend state of step-graph capture (docs/cuda.md "CUDA graphs"): whether the backend's
// stream is capturing, and the persistent device chunks that captured ops take scratch from
// (CaptureScratchPlan). NOTE: a stream-ordered allocation (cudaMallocAsync) inside a capture
// becomes a memory node owned by that graph; the arena instead gives every graph the same
// memory, which is safe because graphs replay one at a time on one stream.
class CaptureArena {
 public:
  CaptureArena() = default;
  ~CaptureArena();  // frees the chunks: the backend's graphs must not replay any more
  CaptureArena(const CaptureArena&) = delete;
  CaptureArena& operator=(const CaptureArena&) = delete;

  bool capturing() const { return capturing_; }
  void set_capturing(bool on) { capturing_ = on; }
  // Outside a capture: adds a chunk large enough for the largest op scratch seen eagerly, so
  // the capture that follows normally allocates nothing.
  Status presize();
  // While capturing: `bytes` of device memory valid until the current outermost op ends.
  Result<void*> take(int64_t bytes);

  void begin_op() { plan_.begin_op(); }
  void end_op() { plan_.end_op(); }
  void note_eager_op(int64_t bytes) { plan_.note_eager_op(bytes); }

 private:
  Status add_chunk(int64_t bytes);

  CaptureScratchPlan plan_;
  std::vector<void*> chunks_;  // kept for the backend's lifetime: graphs point into them
  bool capturing_ = false;
};

class Staging {
 public:
  // `op` names the op in errors; `arena` (may be null: never capturing) is the backend's.
  Staging(cudaStream_t stream, CaptureArena* arena, const char* op);
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
  // Device scratch valid until the op's work is done: stream-ordered and freed with the
  // Staging, or while capturing from the CaptureArena.
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
  bool capturing() const { return arena_ != nullptr && arena_->capturing(); }

  cudaStream_t stream_;
  CaptureArena* arena_;
  const char* op_;
  int64_t eager_scratch_bytes_ = 0;  // rounded as the arena would place them
  std::vector<Entry> entries_;
  std::vector<Span> spans_;
  std::vector<void*> owned_;
  bool any_host_output_ = false;
};

}  // namespace tessera::backend::cuda
