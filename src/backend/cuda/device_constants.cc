// Device constants of the CUDA backend (see device_constants.h).
#include "src/backend/cuda/device_constants.h"

#include <algorithm>

#include "src/backend/cuda/staging.h"

namespace tessera::backend::cuda {

DeviceConstants::~DeviceConstants() {
  for (auto& [key, e] : entries_) (void)cudaFree(const_cast<void*>(e.dev));
}

const DeviceConstants::Entry* DeviceConstants::find(const std::string& key) const {
  const auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

Result<const DeviceConstants::Entry*> DeviceConstants::add(const std::string& key,
                                                           std::span<const std::byte> bytes,
                                                           double host_value, cudaStream_t stream,
                                                           bool capturing, const char* what) {
  if (capturing) {
    return invalid_argument(
        "graph capture: {} needs a device table that no eager call has made yet (run the same "
        "step once without capturing first)",
        what);
  }
  void* p = nullptr;
  TESSERA_CUDA_RETURN(cudaMalloc(&p, std::max<size_t>(bytes.size(), 16)), what);
  // NOTE: on the backend's own stream, then a wait: ordered before every later op on it, and the
  // caller's (pageable) buffer is free once this returns.
  cudaError_t err = cudaMemcpyAsync(p, bytes.data(), bytes.size(), cudaMemcpyHostToDevice, stream);
  if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
  if (err != cudaSuccess) {
    (void)cudaFree(p);
    return cuda_status(err, what);
  }
  Entry& e = entries_[key];
  e.dev = p;
  e.host_value = host_value;
  return &e;
}

}  // namespace tessera::backend::cuda
