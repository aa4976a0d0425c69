// An "emulated device" backend for CPU-only machines: a host backend (reference or CPU) whose
// memory is one mmap'd arena, PROT_NONE except while one of its ops runs, so model code that
// reads a weight, KV block or activation on the host (device memory on CUDA) segfaults here.
// Step graphs behave as CUDA stream capture: ops are recorded, not run, and must take only
// arena operands. Invariant: allocate/upload return arena memory; outside a capture host
// operands stay host (as the CUDA backend stages them); ops are serialised by a mutex.
#pragma once

#include <memory>

#include "tessera/backend/backend.h"

namespace tessera::backend {

// Named "emulated:<inner name>"; is_device() is true. `inner` must be a host backend.
std::unique_ptr<Backend> make_emulated_device_backend(std::unique_ptr<Backend> inner);

}  // namespace tessera::backend
