// Attributes of the current device that kernel launchers consult on every call (compute
// capability, opt-in shared memory), queried from the driver once per device and attribute.
// Invariant: host code only; a failed query reads as -1 (and is not retried).
#pragma once

#include <cuda_runtime.h>

#include <atomic>

namespace tessera::kernels::cuda {

// The current device's value of `Attr`, or -1 when it cannot be queried.
template <cudaDeviceAttr Attr>
int current_device_attribute() {
  constexpr int kMaxDevices = 64;
  // 0: not queried yet; else value + 1 (attribute values are >= 0), or -1 after a failure.
  static std::atomic<int> cache[kMaxDevices];
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return -1;
  }
  int stored = dev < kMaxDevices ? cache[dev].load(std::memory_order_relaxed) : 0;
  if (stored == 0) {
    int value = 0;
    if (cudaDeviceGetAttribute(&value, Attr, dev) == cudaSuccess) {
      stored = value + 1;
    } else {
      (void)cudaGetLastError();
      stored = -1;
    }
    // Every writer stores the same value.
    if (dev < kMaxDevices) cache[dev].store(stored, std::memory_order_relaxed);
  }
  return stored > 0 ? stored - 1 : -1;
}

}  // namespace tessera::kernels::cuda
