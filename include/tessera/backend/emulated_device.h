// An "emulated device" backend for CPU-only machines: it wraps a host backend (the reference
// or CPU one) and keeps all its memory in one mmap'd arena that the host cannot read — the
// arena stays PROT_NONE except while one of its ops runs. Model code that reads a weight, KV
// block or activation on the host (which would read device memory on CUDA) segfaults here.
// Invariant: allocate/upload return arena memory; upload always copies; host tensors and spans
// passed to ops stay host (as the CUDA backend stages them); ops are serialised by a mutex.
#pragma once

#include <memory>

#include "tessera/backend/backend.h"

namespace tessera::backend {

// Named "emulated:<inner name>"; is_device() is true. `inner` must be a host backend.
std::unique_ptr<Backend> make_emulated_device_backend(std::unique_ptr<Backend> inner);

}  // namespace tessera::backend
