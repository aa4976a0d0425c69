// HostBackend: what the reference and CPU backends share — host memory (allocate is an aligned
// host buffer, upload returns the host view itself, download is a strided copy) and host
// implementations of the newer ops (copy, moe_combine, sample, matmul_int8, matmul_batched)
// over kernels/ref.
// A backend derived from it may override any op with a faster kernel.
// Invariant: every tensor such a backend hands out is plain host memory.
#pragma once

#include <span>

#include "tessera/backend/backend.h"

namespace tessera::backend {

class HostBackend : public Backend {
 public:
  bool is_device() const override { return false; }
  Result<BackendTensor> allocate(DType dtype, std::span<const int64_t> shape) override;
  using Backend::allocate;
  Result<BackendTensor> upload(const Tensor& host) override;
  Status download(const Tensor& src, Tensor host_dst) override;
  Status synchronize() override { return {}; }

  Status copy(const Tensor& src, Tensor dst) override;                             // host_memory.cc
  Status moe_combine(const Tensor& x, const Tensor& weights, Tensor out) override;  // host_memory.cc
  Status sample(const Tensor& logits, std::span<const SampleParams> params,
                Tensor out_ids) override;                                           // host_sample.cc
  Status matmul_int8(const Tensor& x, const Tensor& w, const Tensor& w_scale, Int8Mode mode,
                     Tensor out) override;                                          // host_int8.cc
  Status matmul_batched(const Tensor& x, const Tensor& w,
                        Tensor out) override;  // host_matmul_batched.cc
};

}  // namespace tessera::backend
