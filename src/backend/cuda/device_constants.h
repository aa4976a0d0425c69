// Small read-only tables the CUDA backend's ops read from device memory: rope's inv_freq per
// rope spec and the one-sequence attention's batch layout. Each is uploaded once, outside any
// graph capture, and kept for the backend's lifetime, so captured graphs may point at it.
// Invariant: an entry's device contents never change after its upload; while capturing a
// missing entry is an error (the runner's eager warm-up step creates every entry first).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <span>
#include <string>

#include "tessera/core/status.h"

namespace tessera::backend::cuda {

class DeviceConstants {
 public:
  DeviceConstants() = default;
  ~DeviceConstants();
  DeviceConstants(const DeviceConstants&) = delete;
  DeviceConstants& operator=(const DeviceConstants&) = delete;

  struct Entry {
    const void* dev = nullptr;
    double host_value = 0.0;  // a scalar kept beside the table (rope's attention factor)
  };

  // The entry under `key`, or nullptr when there is none yet.
  const Entry* find(const std::string& key) const;
  // Uploads `bytes` (host memory, any alignment) under `key` and waits for the copy, so the host
  // buffer may go at once. `capturing`: refused, naming `what` (the op).
  Result<const Entry*> add(const std::string& key, std::span<const std::byte> bytes,
                           double host_value, cudaStream_t stream, bool capturing,
                           const char* what);

 private:
  std::map<std::string, Entry> entries_;
};

// Appends the bytes of a trivially copyable value to a key.
template <typename T>
void append_key(std::string& key, const T& value) {
  key.append(reinterpret_cast<const char*>(&value), sizeof value);
}

}  // namespace tessera::backend::cuda
